// @ts-check
// The expert's payout profile: billing (an IBAN, or a US account and routing number), address
// (ISO country) and tax form (W-9 or W-8BEN). Each part is saved on its own (a part given
// replaces that part); stored account and tax ids come back masked; the server's 422 is shown
// next to the field it names.
import { h, fill, field, pill, showError, showStatus, showFieldError, clearFieldErrors } from "../dom.js";

/** @typedef {import("../app.js").Ctx} Ctx */

const COUNTRIES = ("AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ " +
  "CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD " +
  "GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM " +
  "KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA " +
  "NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ " +
  "SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU " +
  "WF WS YE YT ZA ZM ZW").split(" ");

/** Countries by name in the browser's language. */
function countryOptions() {
  let names = /** @type {(c: string) => string} */ ((c) => c);
  try {
    const dn = new Intl.DisplayNames(undefined, { type: "region" });
    names = (c) => dn.of(c) || c;
  } catch (e) { /* codes only */ }
  return COUNTRIES.map((c) => ({ code: c, name: names(c) })).sort((a, b) => a.name.localeCompare(b.name));
}

const MISSING_TEXT = /** @type {Record<string, string>} */ ({ billing: "billing information", address: "address", tax: "tax information" });

/** @param {HTMLElement} root @param {any} _params @param {Ctx} ctx */
export function mount(root, _params, ctx) {
  const input = (/** @type {Record<string, any>} */ props) => /** @type {HTMLInputElement} */ (h("input", { type: "text", ...props }));
  const status = h("div", { class: "card", testid: "payout-status" });

  // Billing.
  const holder = input({ maxlength: "200", autocomplete: "name", testid: "billing-holder" });
  const typeIban = /** @type {HTMLInputElement} */ (h("input", { type: "radio", name: "account-type", value: "iban", checked: true, testid: "billing-type-iban" }));
  const typeUs = /** @type {HTMLInputElement} */ (h("input", { type: "radio", name: "account-type", value: "us", testid: "billing-type-us" }));
  const iban = input({ maxlength: "64", placeholder: "DE89 3704 0044 0532 0130 00", autocomplete: "off", testid: "billing-iban" });
  const account = input({ maxlength: "40", inputmode: "numeric", autocomplete: "off", testid: "billing-account" });
  const routing = input({ maxlength: "40", inputmode: "numeric", autocomplete: "off", placeholder: "9 digits", testid: "billing-routing" });
  const ibanField = field("IBAN", iban, { field: "billing.iban" });
  const usFields = h("div", {},
    field("Account number", account, { field: "billing.account_number", hint: "4 to 17 digits" }).el,
    field("Routing number", routing, { field: "billing.routing_number" }).el);
  const billingNow = h("p", { class: "muted small", testid: "billing-current" });
  const billingSave = /** @type {HTMLButtonElement} */ (h("button", { class: "primary", type: "submit", testid: "billing-save" }, "Save billing"));
  const billingForm = h("form", { class: "card", testid: "billing-form" },
    h("h3", {}, "Billing information"), billingNow,
    field("Account holder", holder, { field: "billing.holder_name" }).el,
    h("fieldset", { class: "modes", "data-field": "billing.account_type" }, h("legend", {}, "Account"),
      h("label", {}, typeIban, " IBAN (international)"), h("label", {}, typeUs, " US bank account")),
    ibanField.el, usFields,
    h("div", { class: "actions" }, billingSave));
  const setType = () => { ibanField.el.hidden = typeUs.checked; usFields.hidden = !typeUs.checked; };
  typeIban.addEventListener("change", setType);
  typeUs.addEventListener("change", setType);

  // Address.
  const line1 = input({ maxlength: "200", autocomplete: "address-line1", testid: "address-line1" });
  const line2 = input({ maxlength: "200", autocomplete: "address-line2", testid: "address-line2" });
  const city = input({ maxlength: "100", autocomplete: "address-level2", testid: "address-city" });
  const region = input({ maxlength: "100", autocomplete: "address-level1", testid: "address-region" });
  const postal = input({ maxlength: "20", autocomplete: "postal-code", testid: "address-postal" });
  const country = /** @type {HTMLSelectElement} */ (h("select", { autocomplete: "country", testid: "address-country" },
    h("option", { value: "" }, "Choose a country"), countryOptions().map((c) => h("option", { value: c.code }, `${c.name} (${c.code})`))));
  const addressSave = /** @type {HTMLButtonElement} */ (h("button", { class: "primary", type: "submit", testid: "address-save" }, "Save address"));
  const addressForm = h("form", { class: "card", testid: "address-form" },
    h("h3", {}, "Address"),
    field("Address line 1", line1, { field: "address.line1" }).el,
    field("Address line 2", line2, { field: "address.line2", hint: "optional" }).el,
    h("div", { class: "grid2 tight" },
      field("City", city, { field: "address.city" }).el,
      field("State or region", region, { field: "address.region", hint: "optional" }).el,
      field("Postal code", postal, { field: "address.postal_code" }).el,
      field("Country", country, { field: "address.country" }).el),
    h("div", { class: "actions" }, addressSave));

  // Tax.
  const form = /** @type {HTMLSelectElement} */ (h("select", { testid: "tax-form" },
    h("option", { value: "W-9" }, "W-9 (US person)"), h("option", { value: "W-8BEN" }, "W-8BEN (not a US person)")));
  const legal = input({ maxlength: "200", testid: "tax-legal-name" });
  const taxId = input({ maxlength: "64", autocomplete: "off", testid: "tax-id" });
  const taxIdField = field("Tax id", taxId, { field: "tax.tax_id" });
  const taxNow = h("p", { class: "muted small", testid: "tax-current" });
  const taxSave = /** @type {HTMLButtonElement} */ (h("button", { class: "primary", type: "submit", testid: "tax-save" }, "Save tax information"));
  const taxForm = h("form", { class: "card", testid: "tax-form-card" },
    h("h3", {}, "Tax information"), taxNow,
    field("Tax form", form, { field: "tax.form" }).el,
    field("Legal name", legal, { field: "tax.legal_name" }).el,
    taxIdField.el,
    h("div", { class: "actions" }, taxSave));
  const setForm = () => {
    const label = /** @type {HTMLElement} */ (taxIdField.el.querySelector("label"));
    label.textContent = form.value === "W-9" ? "US taxpayer id (SSN, ITIN or EIN)" : "Foreign tax id";
  };
  form.addEventListener("change", setForm);

  /** @param {any} profile */
  function show(profile) {
    const b = profile.billing, a = profile.address, t = profile.tax;
    fill(status,
      h("div", { class: "card-head" }, h("h3", {}, "Payout profile"),
        profile.complete ? pill("complete", "Complete", "payout-complete") : pill("incomplete", "Incomplete", "payout-complete")),
      profile.complete ? h("p", {}, "You will be paid out at the end of each month.")
        : h("p", { class: "notice", testid: "payout-missing" }, "Before you can be paid out, complete: ",
          (profile.missing || []).map((/** @type {string} */ m) => MISSING_TEXT[m] || m).join(", "), "."),
      h("p", { class: "small muted" }, "Make sure this information is accurate, so that you are paid correctly and on time."));
    if (b) {
      holder.value = b.holder_name || "";
      (b.account_type === "us" ? typeUs : typeIban).checked = true;
      billingNow.textContent = b.account_type === "us"
        ? `Saved: US account ${b.account_masked}, routing ${b.routing_number || ""}. Enter the numbers again to change them.`
        : `Saved: IBAN ${b.account_masked} (${b.bank_country}). Enter an IBAN again to change it.`;
    } else billingNow.textContent = "Not given yet.";
    iban.value = account.value = routing.value = "";
    iban.placeholder = b && b.account_type === "iban" ? `${b.account_masked}: type a new IBAN to change it` : "DE89 3704 0044 0532 0130 00";
    account.placeholder = b && b.account_type === "us" ? `${b.account_masked}: type it again to change it` : "";
    setType();
    if (a) {
      line1.value = a.line1 || ""; line2.value = a.line2 || ""; city.value = a.city || "";
      region.value = a.region || ""; postal.value = a.postal_code || ""; country.value = a.country || "";
    }
    if (t) {
      form.value = t.form;
      legal.value = t.legal_name || "";
      taxNow.textContent = `Saved: ${t.form}, tax id ${t.tax_id_masked}. Enter the id again to change the tax information.`;
    } else taxNow.textContent = "Not given yet.";
    taxId.value = "";
    setForm();
  }

  async function load() {
    try { show((await ctx.api.get("/api/me/payout-profile")).profile); }
    catch (err) { showError(/** @type {any} */ (err), "Loading the payout profile"); }
  }

  /** @param {HTMLElement} f @param {HTMLButtonElement} btn @param {any} body @param {string} what */
  async function save(f, btn, body, what) {
    clearFieldErrors(f);
    btn.disabled = true;
    try {
      const { profile } = await ctx.api.put("/api/me/payout-profile", body);
      show(profile);
      showStatus(`${what} saved.`);
    } catch (err) {
      const e = /** @type {any} */ (err);
      if (!showFieldError(f, e)) showError(e, `Saving ${what.toLowerCase()}`);
    } finally { btn.disabled = false; }
  }
  billingForm.addEventListener("submit", (e) => {
    e.preventDefault();
    /** @type {Record<string, any>} */
    const billing = { holder_name: holder.value.trim(), account_type: typeUs.checked ? "us" : "iban" };
    if (typeUs.checked) { billing.account_number = account.value.trim(); billing.routing_number = routing.value.trim(); }
    else billing.iban = iban.value.trim();
    save(billingForm, billingSave, { billing }, "Billing information");
  });
  addressForm.addEventListener("submit", (e) => {
    e.preventDefault();
    save(addressForm, addressSave, { address: {
      line1: line1.value.trim(), line2: line2.value.trim(), city: city.value.trim(),
      region: region.value.trim(), postal_code: postal.value.trim(), country: country.value,
    } }, "Address");
  });
  taxForm.addEventListener("submit", (e) => {
    e.preventDefault();
    save(taxForm, taxSave, { tax: { form: form.value, legal_name: legal.value.trim(), tax_id: taxId.value.trim() } }, "Tax information");
  });

  root.append(h("h2", {}, "Payout profile"), status, h("div", { class: "grid2" }, billingForm, h("div", {}, addressForm, taxForm)));
  setType();
  setForm();
  load();
  return { refresh: load };
}
