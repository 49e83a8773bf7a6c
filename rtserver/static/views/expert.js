// @ts-check
// Experts, public: the list (best rated first, filtered by skill and language) and one
// expert's page (title, skills, languages, experience, rate, rating, verification, median
// response time, reviews), with a "Request help directly" form for a signed-in customer.
import { h, fill, field, skillList, pill, pager, showError } from "../dom.js";
import { dollars, fmtDuration, fmtDate, stars } from "../format.js";
import { requestForm } from "./parts.js";

/** @typedef {import("../app.js").Ctx} Ctx */

/** @param {any} rating */
function ratingText(rating) {
  if (!rating || !rating.count) return "No reviews yet";
  return `${Number(rating.average).toFixed(1)} / 5 (${rating.count} review${rating.count === 1 ? "" : "s"})`;
}

/** @param {any} e */
function verificationPill(e) {
  return pill(e.verification_status, e.verification_status === "verified" ? "✓ verified" : e.verification_status, "expert-verification");
}

/** The list. @param {HTMLElement} root @param {{query: URLSearchParams}} params @param {Ctx} ctx */
export function mountList(root, params, ctx) {
  const skill = /** @type {HTMLInputElement} */ (h("input", { type: "text", value: params.query.get("skill") || "", testid: "experts-skill" }));
  const language = /** @type {HTMLInputElement} */ (h("input", { type: "text", value: params.query.get("language") || "", testid: "experts-language" }));
  const list = h("div", { class: "expert-grid", testid: "experts-list" });
  const filters = h("form", { class: "row filters" }, field("Skill", skill).el, field("Language", language).el,
    h("button", { type: "submit", testid: "experts-search" }, "Search"));
  async function load() {
    try {
      const r = await ctx.api.get("/api/experts", { skill: skill.value.trim(), language: language.value.trim() });
      const experts = r.experts || [];
      fill(list, experts.length ? experts.map((/** @type {any} */ e) => h("article", { class: "card", testid: "expert-card" },
        h("div", { class: "card-head" }, h("h3", {}, h("a", { href: "#/experts/" + encodeURIComponent(e.id), testid: "expert-link" }, e.name)), verificationPill(e)),
        e.title ? h("p", {}, e.title) : null,
        skillList(e.skills),
        h("div", { class: "meta" },
          h("span", { class: "stars" }, e.rating && e.rating.count ? stars(Math.round(e.rating.average)) : ""), h("span", {}, ratingText(e.rating)),
          h("span", {}, dollars(e.rate_cents_per_15min), " / 15 min"))))
        : h("p", { class: "empty" }, "No expert matches."));
    } catch (err) { showError(/** @type {any} */ (err), "Loading experts"); }
  }
  filters.addEventListener("submit", (e) => { e.preventDefault(); load(); });
  root.append(h("h2", {}, "Experts"), filters, list);
  load();
  return { refresh: load };
}

/** One expert. @param {HTMLElement} root @param {{id: string}} params @param {Ctx} ctx */
export function mount(root, params, ctx) {
  const id = params.id;
  const body = h("div", { testid: "expert-profile" }, h("p", { class: "muted" }, "Loading…"));
  const reviews = h("ol", { class: "reviews", testid: "expert-reviews" });
  const empty = h("p", { class: "empty", hidden: true }, "No reviews yet.");
  root.append(body);

  async function load() {
    let e;
    try { e = (await ctx.api.get("/api/experts/" + encodeURIComponent(id))).expert; }
    catch (err) {
      fill(body, h("p", { class: "empty", testid: "expert-missing" }, "No such expert."));
      if (/** @type {any} */ (err).status !== 404) showError(/** @type {any} */ (err), "Loading the expert");
      return;
    }
    const canAsk = ctx.role() === "customer";
    const p = pager(async (cursor) => {
      const r = await ctx.api.get(`/api/experts/${encodeURIComponent(id)}/reviews`, { cursor, limit: 10 });
      return { items: r.reviews || [], next: r.next_cursor };
    }, (items) => {
      for (const r of items) {
        reviews.append(h("li", { class: "review", testid: "review" },
          h("div", { class: "row" }, h("span", { class: "stars", "aria-label": `${r.stars} of 5 stars` }, stars(r.stars)),
            h("strong", {}, r.customer ? r.customer.name : "A customer"), h("span", { class: "muted small" }, fmtDate(r.created_at))),
          r.comment ? h("p", { class: "desc" }, r.comment) : null));
      }
      empty.hidden = reviews.children.length > 0;
    }, { testid: "reviews-more" });
    reviews.replaceChildren();
    fill(body,
      h("article", { class: "card profile" },
        h("div", { class: "card-head" }, h("h2", { testid: "expert-name" }, e.name), verificationPill(e)),
        e.title ? h("p", { class: "lead", testid: "expert-title" }, e.title) : null,
        h("div", { class: "stat-row" },
          h("div", { class: "stat" }, h("div", { class: "big", testid: "expert-rating" },
            e.rating && e.rating.average !== null ? Number(e.rating.average).toFixed(1) : "—"),
            h("div", { class: "muted small" }, e.rating && e.rating.count ? `${stars(Math.round(e.rating.average))} · ${e.rating.count} review${e.rating.count === 1 ? "" : "s"}` : "no reviews yet")),
          h("div", { class: "stat" }, h("div", { class: "big", testid: "expert-rate" }, dollars(e.rate_cents_per_15min)), h("div", { class: "muted small" }, "per 15 minutes")),
          h("div", { class: "stat" }, h("div", { class: "big" }, String(e.years_experience || 0)), h("div", { class: "muted small" }, "years of experience")),
          h("div", { class: "stat" }, h("div", { class: "big", testid: "expert-response" }, fmtDuration(e.median_response_seconds)),
            h("div", { class: "muted small" }, "median response time"))),
        h("h3", {}, "Skills"), skillList(e.skills),
        h("h3", {}, "Languages"), h("p", { testid: "expert-languages" }, (e.languages || []).join(", ") || "—"),
        e.bio ? [h("h3", {}, "About"), h("p", { class: "desc" }, e.bio)] : null),
      h("div", { class: "grid2" },
        h("section", { class: "card", "aria-label": "Reviews" }, h("h3", {}, "Reviews"), reviews, empty, p.el),
        canAsk ? requestForm(ctx, { expert: e, onSent: () => ctx.navigate("#/ask") }).el
          : !ctx.me().id ? h("p", { class: "card" }, h("a", { href: "#/login" }, "Sign in"), " as a customer to ask ", e.name, " for help directly.") : null));
    p.first();
  }
  load();
  return { refresh: load };
}
