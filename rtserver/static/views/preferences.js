// @ts-check
// The expert's My Preferences: title, skills, languages, experience, rate, bio (and the
// read-only verification status), and a phone number for text reminders.
import { h, field, showError, showStatus, showFieldError, clearFieldErrors, pill } from "../dom.js";
import { splitList } from "../format.js";

/** @typedef {import("../app.js").Ctx} Ctx */

/** @param {HTMLElement} root @param {any} _params @param {Ctx} ctx */
export function mount(root, _params, ctx) {
  const input = (/** @type {Record<string, any>} */ props) => /** @type {HTMLInputElement} */ (h("input", props));
  const verification = h("span", { testid: "pref-verification" });
  const title = input({ type: "text", maxlength: "200", placeholder: "e.g. Senior Unity developer", testid: "pref-title" });
  const skills = input({ type: "text", placeholder: "unity, c#, shaders", testid: "pref-skills" });
  const languages = input({ type: "text", placeholder: "en, de", required: true, testid: "pref-languages" });
  const years = input({ type: "number", min: "0", max: "80", step: "1", value: "0", required: true, testid: "pref-years" });
  const rate = input({ type: "number", min: "0", step: "0.01", value: "0", required: true, testid: "pref-rate" });
  const bio = /** @type {HTMLTextAreaElement} */ (h("textarea", { maxlength: "10000", testid: "pref-bio" }));
  const save = /** @type {HTMLButtonElement} */ (h("button", { class: "primary", type: "submit", testid: "pref-save" }, "Save preferences"));
  const profileLink = h("a", { href: "#/experts/" + encodeURIComponent(ctx.me().id), testid: "my-profile-link" }, "See my public profile");
  const form = h("form", { class: "card", testid: "prefs-form" },
    h("div", { class: "card-head" }, h("h2", {}, "My Preferences"), profileLink),
    h("p", {}, "Verification status: ", verification),
    field("Title", title, { field: "title" }).el,
    field("Skills", skills, { hint: "comma-separated", field: "skills" }).el,
    field("Languages", languages, { hint: "comma-separated, at least one", field: "languages" }).el,
    field("Years of experience", years, { field: "years_experience" }).el,
    field("Rate", rate, { hint: "US dollars per 15 minutes", field: "rate_cents_per_15min" }).el,
    field("Bio", bio, { field: "bio" }).el,
    h("div", { class: "actions" }, save));

  const phone = input({ type: "tel", placeholder: "+14155550100", testid: "pref-phone", autocomplete: "tel" });
  const savePhone = /** @type {HTMLButtonElement} */ (h("button", { type: "submit", testid: "phone-save" }, "Save phone"));
  const removePhone = /** @type {HTMLButtonElement} */ (h("button", { type: "button", testid: "phone-remove" }, "Remove"));
  const phoneForm = h("form", { class: "card", testid: "phone-form" },
    h("h2", {}, "Text notifications"),
    h("p", { class: "muted small" }, "With a phone number, reminders and direct requests also reach you as a text."),
    field("Phone", phone, { hint: "international format, like +14155550100", field: "phone" }).el,
    h("div", { class: "row actions" }, savePhone, removePhone));

  /** @param {any} user */
  function show(user) {
    fillVerification(user.verification_status || "pending");
    title.value = user.title || "";
    skills.value = (user.skills || []).join(", ");
    languages.value = (user.languages || []).join(", ");
    years.value = String(user.years_experience || 0);
    rate.value = ((user.rate_cents_per_15min || 0) / 100).toFixed(2);
    bio.value = user.bio || "";
    phone.value = user.phone || "";
    removePhone.hidden = !user.phone;
  }
  /** @param {string} status */
  function fillVerification(status) { verification.replaceChildren(pill(status)); }

  async function load() {
    try { show((await ctx.api.get("/api/me")).user); }
    catch (err) { showError(/** @type {any} */ (err), "Loading preferences"); }
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    const dollars = Number(rate.value);
    const langs = splitList(languages.value);
    if (!Number.isFinite(dollars) || dollars < 0) { showStatus("The rate must be a number of dollars, 0 or more.", "error"); return; }
    if (!langs.length) { showStatus("Name at least one language.", "error"); return; }
    const body = {
      title: title.value.trim(), skills: splitList(skills.value), languages: langs,
      years_experience: Math.max(0, Math.trunc(Number(years.value) || 0)),
      rate_cents_per_15min: Math.round(dollars * 100), bio: bio.value,
    };
    save.disabled = true;
    try {
      const { user } = await ctx.api.put("/api/me/preferences", body);
      rate.value = (user.rate_cents_per_15min / 100).toFixed(2);
      fillVerification(user.verification_status || "pending");
      showStatus("Preferences saved.");
    } catch (err) {
      if (!showFieldError(form, /** @type {any} */ (err))) showError(/** @type {any} */ (err), "Saving preferences");
    } finally { save.disabled = false; }
  });

  /** @param {string|null} value */
  async function putPhone(value) {
    clearFieldErrors(phoneForm);
    savePhone.disabled = removePhone.disabled = true;
    try {
      const { user } = await ctx.api.put("/api/me/phone", { phone: value });
      phone.value = user.phone || "";
      removePhone.hidden = !user.phone;
      showStatus(user.phone ? "Phone number saved." : "Phone number removed.");
    } catch (err) {
      if (!showFieldError(phoneForm, /** @type {any} */ (err))) showError(/** @type {any} */ (err), "Saving the phone number");
    } finally { savePhone.disabled = removePhone.disabled = false; }
  }
  phoneForm.addEventListener("submit", (e) => { e.preventDefault(); putPhone(phone.value.trim() || null); });
  removePhone.addEventListener("click", () => putPhone(null));

  root.append(h("section", { class: "grid2" }, form, phoneForm));
  load();
  return { refresh: load };
}
