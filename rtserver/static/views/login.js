// @ts-check
// Sign in, or create a customer or expert account.
import { h, field, showError, showStatus } from "../dom.js";

/** @typedef {import("../app.js").Ctx} Ctx */

/** @param {HTMLElement} root @param {any} _params @param {Ctx} ctx */
export function mount(root, _params, ctx) {
  const email = h("input", { type: "email", autocomplete: "username", required: true, testid: "login-email" });
  const password = h("input", { type: "password", autocomplete: "current-password", required: true, testid: "login-password" });
  const loginBtn = h("button", { class: "primary", type: "submit", testid: "login-submit" }, "Sign in");
  const login = h("form", { class: "card", "aria-labelledby": "login-h", testid: "login-form" },
    h("h2", { id: "login-h" }, "Sign in"),
    field("E-mail", email).el, field("Password", password).el,
    h("div", { class: "actions" }, loginBtn));

  const name = h("input", { type: "text", autocomplete: "name", maxlength: "100", required: true, testid: "reg-name" });
  const regEmail = h("input", { type: "email", autocomplete: "email", required: true, testid: "reg-email" });
  const regPassword = h("input", { type: "password", autocomplete: "new-password", minlength: "8", required: true, testid: "reg-password" });
  const role = h("select", { testid: "reg-role" },
    h("option", { value: "customer" }, "get help (customer)"),
    h("option", { value: "expert" }, "give help (expert)"));
  const regBtn = h("button", { class: "primary", type: "submit", testid: "reg-submit" }, "Register");
  const register = h("form", { class: "card", "aria-labelledby": "register-h", testid: "register-form" },
    h("h2", { id: "register-h" }, "Create an account"),
    field("Name", name).el, field("E-mail", regEmail).el,
    field("Password", regPassword, { hint: "at least 8 characters" }).el,
    field("I want to", role).el,
    h("div", { class: "actions" }, regBtn));

  /** @param {string} path @param {any} body @param {HTMLFormElement} form @param {HTMLElement} btn */
  async function submit(path, body, form, btn) {
    /** @type {any} */ (btn).disabled = true;
    try {
      const data = await ctx.api.post(path, body);
      form.reset();
      showStatus("");
      ctx.signIn(data.token, data.user);
    } catch (err) {
      showError(/** @type {any} */ (err), path.endsWith("login") ? "Sign-in" : "Registration");
    } finally { /** @type {any} */ (btn).disabled = false; }
  }
  login.addEventListener("submit", (e) => {
    e.preventDefault();
    submit("/api/auth/login", { email: /** @type {HTMLInputElement} */ (email).value.trim(),
      password: /** @type {HTMLInputElement} */ (password).value }, /** @type {HTMLFormElement} */ (login), loginBtn);
  });
  register.addEventListener("submit", (e) => {
    e.preventDefault();
    submit("/api/auth/register", {
      name: /** @type {HTMLInputElement} */ (name).value.trim(),
      email: /** @type {HTMLInputElement} */ (regEmail).value.trim(),
      password: /** @type {HTMLInputElement} */ (regPassword).value,
      role: /** @type {HTMLSelectElement} */ (role).value,
    }, /** @type {HTMLFormElement} */ (register), regBtn);
  });

  root.append(h("section", { class: "grid2" }, login, register),
    h("p", { class: "muted small" }, "Looking for an expert first? ",
      h("a", { href: "#/experts", testid: "browse-experts" }, "Browse the experts"), "."));
  email.focus();
  return {};
}
