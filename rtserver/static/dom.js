// @ts-check
// DOM helpers shared by the views: element building, the status line, toasts, tabs,
// tables, cursor lists, downloads.

/**
 * @typedef {Node|string|number|null|undefined|false} Child
 * @typedef {Child|Child[]|Child[][]} Children
 */

/**
 * Build an element. Strings become text nodes: user text never goes through HTML parsing.
 * Props: class, on<event> handlers, value/checked/selected/disabled as properties,
 * testid as data-testid, anything else as an attribute.
 * @param {string} tag @param {Record<string, any>|null} [props] @param {...Children} children
 * @returns {HTMLElement}
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "testid") el.dataset.testid = v;
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "value" || k === "checked" || k === "selected" || k === "disabled" || k === "hidden") {
      /** @type {any} */ (el)[k] = v;
    } else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

/** @param {HTMLElement} el @param {Children[]} children */
function append(el, children) {
  for (const c of /** @type {any[]} */ (children).flat(3)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** @param {string} id @returns {HTMLElement} */
export const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** Append children, leaving out null, undefined and false. @param {Element} el @param {...Children} children */
export function add(el, ...children) {
  append(/** @type {HTMLElement} */ (el), children);
}

/** Replace an element's children. @param {Element} el @param {...Children} children */
export function fill(el, ...children) {
  el.replaceChildren();
  append(/** @type {HTMLElement} */ (el), children);
}

// ---------- the status line and toasts -----------------------------------------------

/** @type {any} */
let statusTimer = null;

/** A line under the header: info fades, errors stay until dismissed. @param {string} text @param {"info"|"error"} [kind] */
export function showStatus(text, kind = "info") {
  const el = $("status");
  if (!el) return;
  clearTimeout(statusTimer);
  el.replaceChildren();
  el.className = text ? kind : "";
  if (!text) return;
  el.append(h("span", { testid: "status-text" }, text),
    h("button", { type: "button", "aria-label": "Dismiss", onclick: () => showStatus("") }, "×"));
  if (kind === "info") statusTimer = setTimeout(() => showStatus(""), 8000);
}

/** @param {{code?: string, message?: string}} err @param {string} [what] */
export function showError(err, what) {
  showStatus(`${what ? what + " failed — " : ""}${err.code || "error"}: ${err.message || ""}`, "error");
}

/**
 * A toast in the corner for what must not be missed.
 * @param {string} text @param {string} [kind] @param {number} [ms]
 */
export function toast(text, kind = "", ms = 30000) {
  const box = $("toasts");
  if (!box) return;
  const close = () => el.remove();
  const el = h("div", { class: "toast " + kind, role: kind === "reminder" ? "alert" : "status", testid: "toast" },
    h("p", {}, text), h("button", { type: "button", "aria-label": "Dismiss", onclick: close }, "×"));
  box.append(el);
  setTimeout(close, ms);
}

// ---------- building blocks -------------------------------------------------------

/**
 * Tabs (arrow keys move between them). Returns the tab bar and a select(name) function.
 * @param {{name: string, label: string, testid?: string}[]} tabs
 * @param {string} selected @param {(name: string) => void} onSelect @param {string} label
 */
export function tabBar(tabs, selected, onSelect, label) {
  /** @type {HTMLElement[]} */
  const buttons = [];
  const bar = h("div", { class: "tabs", role: "tablist", "aria-label": label });
  const select = (/** @type {string} */ name) => {
    for (const b of buttons) {
      const on = b.dataset.name === name;
      b.setAttribute("aria-selected", String(on));
      b.tabIndex = on ? 0 : -1;
    }
  };
  tabs.forEach((t, i) => {
    const b = h("button", { type: "button", role: "tab", testid: t.testid || "tab-" + t.name }, t.label);
    b.dataset.name = t.name;
    b.addEventListener("click", () => { select(t.name); onSelect(t.name); });
    b.addEventListener("keydown", (e) => {
      const d = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
      if (!d) return;
      const n = buttons[(i + d + buttons.length) % buttons.length];
      n.focus();
      n.click();
    });
    buttons.push(b);
    bar.append(b);
  });
  select(selected);
  return { bar, select };
}

/**
 * A table: columns {label, cell(row) → Children, num?}; rows appended with add().
 * @template T
 * @param {{label: string, cell: (row: T) => Children, num?: boolean, date?: boolean}[]} columns
 * @param {{testid?: string, caption?: string, rowTestid?: string, empty?: string}} [opts]
 */
export function table(columns, opts = {}) {
  const body = h("tbody", {});
  const empty = h("p", { class: "empty", hidden: true }, opts.empty || "Nothing here yet.");
  const el = h("div", { class: "table-wrap" },
    h("table", { class: "data", testid: opts.testid },
      opts.caption ? h("caption", { class: "sr-only" }, opts.caption) : null,
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : "" }, c.label)))),
      body),
    empty);
  return {
    el,
    /** @param {T[]} rows */
    add(rows) {
      for (const r of rows) {
        body.append(h("tr", { testid: opts.rowTestid }, columns.map((c) => h("td", { class: c.num ? "num" : c.date ? "date" : "" }, c.cell(r)))));
      }
      empty.hidden = body.children.length > 0;
    },
    clear() { body.replaceChildren(); empty.hidden = false; },
    get size() { return body.children.length; },
  };
}

/**
 * A list read page by page with an opaque cursor: load(cursor) → {items, next_cursor}.
 * The "Load more" button shows while there is a next page.
 * @template T
 * @param {(cursor: string|null) => Promise<{items: T[], next: string|null}>} load
 * @param {(items: T[]) => void} show
 * @param {{testid?: string}} [opts]
 */
export function pager(load, show, opts = {}) {
  let next = /** @type {string|null} */ (null);
  let busy = false;
  const button = /** @type {HTMLButtonElement} */ (h("button", { type: "button", testid: opts.testid || "load-more", hidden: true }, "Load more"));
  const info = h("span", { class: "muted small" });
  const el = h("div", { class: "row actions" }, button, info);
  async function page(/** @type {string|null} */ cursor) {
    busy = true;
    button.disabled = true;
    info.textContent = "Loading…";
    try {
      const r = await load(cursor);
      show(r.items);
      next = r.next;
      info.textContent = "";
    } catch (err) {
      info.textContent = "";
      showError(/** @type {any} */ (err), "Loading");
    } finally {
      busy = false;
      button.disabled = false;
      button.hidden = !next;
    }
  }
  button.addEventListener("click", () => { if (!busy && next) page(next); });
  return { el, first: () => page(null), more: () => (next ? page(next) : Promise.resolve()), hasMore: () => !!next };
}

/** A labelled field with a place for its error: {el, input, error}. */
/**
 * @param {string} label @param {HTMLElement} input @param {{hint?: string, field?: string}} [opts]
 */
export function field(label, input, opts = {}) {
  const id = input.id || (input.id = "f-" + Math.random().toString(36).slice(2, 9));
  const error = h("p", { class: "field-error", id: id + "-err", role: "alert", hidden: true });
  if (opts.field) input.dataset.field = opts.field;
  input.setAttribute("aria-describedby", id + "-err");
  const el = h("div", { class: "field" },
    h("label", { for: id }, label, opts.hint ? h("span", { class: "hint" }, " (" + opts.hint + ")") : null),
    input, error);
  return { el, input, error };
}

/**
 * Show a 422's message next to the input whose data-field it names; true when one was found.
 * @param {HTMLElement} form @param {{field?: string, message?: string}} err
 */
export function showFieldError(form, err) {
  clearFieldErrors(form);
  if (!err.field) return false;
  const input = /** @type {HTMLElement|null} */ (form.querySelector(`[data-field="${CSS.escape(err.field)}"]`));
  if (!input) return false;
  const box = input.id ? document.getElementById(input.id + "-err") : null;
  if (!box) return false;
  input.setAttribute("aria-invalid", "true");
  box.textContent = err.message || "invalid";
  box.hidden = false;
  input.focus();
  return true;
}

/** @param {HTMLElement} form */
export function clearFieldErrors(form) {
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const el of form.querySelectorAll(".field-error")) { el.textContent = ""; /** @type {HTMLElement} */ (el).hidden = true; }
}

/** Save a Blob as a file (a link to a blob: URL, clicked). @param {Blob} blob @param {string} name */
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

/** @param {string[]} skills */
export function skillList(skills) {
  return h("ul", { class: "skills", "aria-label": "Skills" }, (skills || []).map((s) => h("li", {}, s)));
}

/** A pill with a status. @param {string} status @param {string} [text] @param {string} [testid] */
export const pill = (status, text, testid) => h("span", { class: "pill " + status, testid }, text || status.replace("_", " "));

/** A definition list from [term, value] pairs (null values are left out). @param {[string, Children][]} rows @param {string} [testid] */
export function dl(rows, testid) {
  return h("dl", { class: "summary", testid }, rows.filter(([, v]) => v !== null && v !== undefined)
    .flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

/**
 * An inline confirmation: returns {el, ask(text, onYes)}.
 * @param {string} yesLabel @param {string} noLabel @param {string} [testid]
 */
export function confirmBox(yesLabel, noLabel, testid = "confirm") {
  const text = h("p", {});
  const yes = h("button", { class: "danger", type: "button", testid: testid + "-yes" }, yesLabel);
  const no = h("button", { type: "button", testid: testid + "-no" }, noLabel);
  const el = h("div", { class: "notice", role: "group", "aria-label": "Confirm", hidden: true }, text, h("div", { class: "row" }, yes, no));
  no.addEventListener("click", () => { el.hidden = true; });
  return {
    el, yes,
    /** @param {string} t @param {() => void} onYes */
    ask(t, onYes) {
      text.textContent = t;
      yes.onclick = () => { el.hidden = true; onYes(); };
      el.hidden = false;
      yes.focus();
    },
    hide() { el.hidden = true; },
  };
}
