/**
 * GET /dashboard: the operators' live page. One self-contained HTML document
 * (no external assets) that polls GET /dashboard/data every 2 s and draws the
 * account's capacity as its governor describes it (limit, used, headroom,
 * launches per second, the account breaker, each active tenant's weight,
 * holdings and fair share), then, per pool: gauges (leased / idle / launching
 * / resetting / closing of maxSessions, waiting, consistency, draining, the
 * pool's circuit breaker, whether it can reach the governor), charts of
 * acquires, failures and mean queue wait per interval (kept in the page since
 * it opened), the head of the wait queue, the latest lifecycle events, and
 * its active leases (the oldest 12), each with a live thumbnail and a button
 * that opens a (view-only) viewer in a new tab.
 * A governor that does not answer leaves the account panel saying so; the
 * pools are drawn all the same.
 *
 * Auth: the admin token. A browser opens `/dashboard?token=<admin token>` once;
 * the page answers with an HttpOnly, SameSite=Strict cookie holding a signed
 * session that expires in 12 h (never the token; see session.ts) and redirects
 * to `/dashboard`, so the token leaves the address bar and the history. The
 * cookie authorises reads only (see requireAdmin), and one action: minting a
 * lease's viewer from this page's own script (an Origin check, auth.ts).
 *
 * Thumbnails: the script mints one view-only viewer URL per lease (POST
 * /v1/admin/pools/{tenant}/{pool}/leases/{id}/viewer) the first time it shows
 * the lease, keeps it in page memory, and embeds it compact (`&compact=1`:
 * the screen only, 2 frames a second). Never on a refresh: the data is redrawn
 * every 2 s, but a lease's tile, and its <iframe>, is created once and
 * removed when the lease is no longer listed (moving or re-creating an
 * <iframe> would reload it, opening another stream). At most
 * DASHBOARD_THUMBNAILS are live at once, page-wide; the page says so when
 * leases go without. Each thumbnail is one of its lease's 4 viewer sockets
 * while the page is open.
 */
import type { CapacityView } from "../governor/object";
import { grantedTotal } from "../pool/metrics";
import type { PoolDashboard } from "../pool/object";
import type { PoolEntry } from "../registry/object";

/** Pools the dashboard shows at most (the first by tenant and name). */
export const DASHBOARD_MAX_POOLS = 100;
/** Live thumbnails the page shows at once: each is a stream of frames from a leased browser. */
export const DASHBOARD_THUMBNAILS = 12;

export interface DashboardPool {
  tenant: string;
  pool: string;
  counts: PoolDashboard["counts"];
  maxSessions: number;
  maxWaiters: number;
  consistent: boolean;
  draining: boolean;
  /** The pool's circuit breaker (src/pool/capacity.ts). */
  breaker: PoolDashboard["breaker"];
  /** The pool's last call to the account's governor failed: it launches within its local budget. */
  governorUnreachable: boolean;
  /** Totals since the pool was created; the page charts their differences between polls. */
  totals: { granted: number; failed: number; queueWaitSeconds: number; launchFailures: number; launchDeferred: number };
  queue: PoolDashboard["queue"];
  events: PoolDashboard["events"];
  /** The oldest active leases (PoolDashboard's `leases`), and whether more are active. */
  leases: PoolDashboard["leases"];
  moreLeases: boolean;
}

export function dashboardPool(d: PoolDashboard): DashboardPool {
  const waits = d.histograms.filter((h) => h.name === "queue_wait_seconds");
  return {
    tenant: d.tenant,
    pool: d.pool,
    counts: d.counts,
    maxSessions: d.maxSessions,
    maxWaiters: d.maxWaiters,
    consistent: d.consistent,
    draining: d.draining,
    breaker: d.breaker,
    governorUnreachable: d.governorUnreachable,
    totals: {
      granted: grantedTotal(d.histograms),
      failed: d.counters.filter((c) => c.name === "acquire_failures").reduce((sum, c) => sum + c.value, 0),
      queueWaitSeconds: waits.reduce((sum, h) => sum + h.sum, 0),
      launchFailures: d.counters.filter((c) => c.name === "launch_failures").reduce((sum, c) => sum + c.value, 0),
      launchDeferred: d.counters.filter((c) => c.name === "launch_deferred").reduce((sum, c) => sum + c.value, 0),
    },
    queue: d.queue,
    events: d.events,
    leases: d.leases,
    moreLeases: d.moreLeases,
  };
}

/** The account as the page shows it: null when the governor did not answer. */
export interface DashboardAccount {
  limit: number;
  used: number;
  headroom: number;
  launchesPerSecond: number;
  breaker: CapacityView["breaker"];
  /** No launch is granted before this (the platform answered 429), or null. */
  blockedUntil: string | null;
  tenants: CapacityView["tenants"];
}

export function dashboardAccount(view: CapacityView): DashboardAccount {
  return {
    limit: view.limits.maxConcurrentSessions,
    used: view.usage.used,
    headroom: view.usage.headroom,
    launchesPerSecond: view.limits.launchesPerSecond,
    breaker: view.breaker,
    blockedUntil: view.usage.blockedUntil,
    tenants: view.tenants,
  };
}

export async function dashboardData(
  registry: { listPools(o: { limit: number }): Promise<{ pools: PoolEntry[]; nextCursor: string | null }> },
  describe: (entry: PoolEntry) => Promise<PoolDashboard | undefined>,
  account: () => Promise<CapacityView | null>,
): Promise<{ at: string; account: DashboardAccount | null; pools: DashboardPool[]; truncated: boolean }> {
  const [page, capacity] = await Promise.all([registry.listPools({ limit: DASHBOARD_MAX_POOLS }), account()]);
  const pools = (await Promise.all(page.pools.map(describe))).filter((d): d is PoolDashboard => d !== undefined);
  return {
    at: new Date().toISOString(),
    account: capacity === null ? null : dashboardAccount(capacity),
    pools: pools.map(dashboardPool),
    truncated: page.nextCursor !== null,
  };
}

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Browser session broker</title>
<style>
  :root { --bg:#0f1419; --panel:#1a2129; --text:#e6e6e6; --muted:#8a949e; --leased:#4f9cf9; --idle:#46c37b; --launching:#f5b942; --resetting:#b48ef5; --closing:#e0715c; --bad:#ff5c5c; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, sans-serif; background: var(--bg); color: var(--text); }
  header { display: flex; gap: 1rem; align-items: baseline; padding: 1rem 1.5rem; border-bottom: 1px solid #2a333d; }
  header h1 { font-size: 1.1rem; margin: 0; }
  header .muted { color: var(--muted); }
  main { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: 1rem; padding: 1rem 1.5rem; }
  section.pool { background: var(--panel); border-radius: 8px; padding: 1rem; border: 1px solid #2a333d; }
  section.pool.inconsistent { border-color: var(--bad); }
  h2 { font-size: 1rem; margin: 0 0 .5rem; display: flex; justify-content: space-between; }
  .badge { font-size: .75rem; padding: .1rem .45rem; border-radius: 4px; background: #2a333d; }
  .badge.bad { background: var(--bad); color: #000; }
  .bar { display: flex; height: 18px; border-radius: 4px; overflow: hidden; background: #2a333d; margin: .25rem 0 .5rem; }
  .bar span { display: block; height: 100%; }
  dl { display: grid; grid-template-columns: repeat(6, 1fr); gap: .25rem; margin: 0 0 .75rem; }
  dl div { text-align: center; } dt { color: var(--muted); font-size: .75rem; } dd { margin: 0; font-size: 1.2rem; font-variant-numeric: tabular-nums; }
  .charts { display: grid; grid-template-columns: repeat(3, 1fr); gap: .5rem; margin-bottom: .75rem; }
  .chart { background: #141a20; border-radius: 4px; padding: .25rem .4rem; }
  .chart .label { color: var(--muted); font-size: .7rem; }
  svg { width: 100%; height: 42px; display: block; }
  h3 { font-size: .8rem; color: var(--muted); margin: .5rem 0 .25rem; font-weight: 600; }
  ol, ul { margin: 0; padding-left: 1.1rem; font-size: .8rem; max-height: 9.5rem; overflow: auto; }
  code { font-size: .75rem; color: var(--muted); }
  .empty { color: var(--muted); font-size: .8rem; }
  #error { color: var(--bad); }
  #account { margin: 1rem 1.5rem 0; background: var(--panel); border-radius: 8px; padding: 1rem; border: 1px solid #2a333d; }
  #account.unreachable { border-color: var(--bad); }
  #account dl { grid-template-columns: repeat(5, 1fr); }
  table { width: 100%; border-collapse: collapse; font-size: .8rem; font-variant-numeric: tabular-nums; }
  th, td { text-align: right; padding: .15rem .5rem; border-bottom: 1px solid #2a333d; } th:first-child, td:first-child { text-align: left; }
  th { color: var(--muted); font-weight: 600; }
  .badge.warn { background: var(--launching); color: #000; }
  .leases { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: .5rem; }
  figure.lease { margin: 0; background: #141a20; border-radius: 4px; padding: .3rem; }
  .thumb { aspect-ratio: 16 / 10; background: #0b0f13; border-radius: 3px; overflow: hidden; display: flex; align-items: center; justify-content: center; text-align: center; color: var(--muted); font-size: .75rem; padding: 0; }
  .thumb iframe { width: 100%; height: 100%; border: 0; display: block; }
  figcaption { display: flex; gap: .4rem; align-items: center; font-size: .75rem; margin-top: .25rem; white-space: nowrap; }
  figcaption button { margin-left: auto; font: inherit; color: var(--text); background: #2a333d; border: 1px solid #3a4550; border-radius: 4px; padding: .05rem .4rem; cursor: pointer; }
</style>
</head>
<body>
<header><h1>Browser session broker</h1><span class="muted" id="updated">loading…</span><span class="muted" id="thumbs"></span><span id="error"></span></header>
<section id="account"><p class="empty">loading the account…</p></section>
<main id="pools"></main>
<script>
"use strict";
const POLL_MS = 2000, KEEP = 60, MAX_THUMBS = ${DASHBOARD_THUMBNAILS}, MINT_RETRY_MS = 30000;
const history = new Map();
const STATES = ["leased", "idle", "launching", "resetting", "closing"];
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

function spark(values, color) {
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? 100 / (values.length - 1) : 100;
  const points = values.map((v, i) => (i * step).toFixed(1) + "," + (40 - (v / max) * 38).toFixed(1)).join(" ");
  return '<svg viewBox="0 0 100 42" preserveAspectRatio="none"><polyline fill="none" stroke="' + color + '" stroke-width="1.5" vector-effect="non-scaling-stroke" points="' + points + '"/></svg>';
}

function breakerBadge(b, field) {
  const cls = b.state === "open" ? " bad" : b.state === "half_open" ? " warn" : "";
  const label = b.state === "open" ? "breaker open" + (b.retryAfterSeconds ? " " + b.retryAfterSeconds + " s" : "") : b.state === "half_open" ? "breaker half-open" : "breaker closed";
  return '<span class="badge' + cls + '" data-field="' + field + '" data-state="' + esc(b.state) + '">' + esc(label) + "</span>";
}

function renderAccount(a) {
  const el = document.getElementById("account");
  el.className = a ? "" : "unreachable";
  if (!a) { el.innerHTML = '<h2><span>Account</span><span class="badge bad" data-field="governor">capacity governor unreachable</span></h2><p class="empty">Pools launch within their local budget (GOVERNOR_FALLBACK_SESSIONS) until it answers again.</p>'; return; }
  const cells = [["limit", a.limit], ["used", a.used], ["headroom", a.headroom], ["launchesPerSecond", a.launchesPerSecond]]
    .map(([k, v]) => '<div><dt>' + (k === "launchesPerSecond" ? "launches / s" : k) + '</dt><dd data-field="' + k + '">' + v + "</dd></div>").join("");
  const tenants = a.tenants.length ? "<table><thead><tr><th>tenant</th><th>weight</th><th>held</th><th>pending</th><th>fair share</th></tr></thead><tbody>" +
    a.tenants.map((t) => '<tr data-tenant="' + esc(t.tenant) + '"><td>' + esc(t.tenant) + '</td><td data-field="weight">' + t.weight + '</td><td data-field="held">' + t.held + '</td><td data-field="pending">' + t.pending + '</td><td data-field="share">' + t.share + "</td></tr>").join("") +
    "</tbody></table>" : '<p class="empty">no tenant holds or waits for a browser</p>';
  el.innerHTML = "<h2><span>Account</span><span>" + (a.blockedUntil ? '<span class="badge warn" data-field="blocked">platform 429 until ' + esc(a.blockedUntil.slice(11, 19)) + "</span> " : "") + breakerBadge(a.breaker, "breaker") + "</span></h2>" +
    '<div class="bar"><span title="used" style="width:' + Math.min(100, 100 * a.used / Math.max(1, a.limit)) + '%;background:var(--leased)"></span></div>' +
    "<dl>" + cells + '<div><dt>breaker streak</dt><dd data-field="streak">' + a.breaker.streak + "</dd></div></dl><h3>Tenants</h3>" + tenants;
}

/** A pool's numbers, charts, queue and events: redrawn on every poll. */
function summary(p) {
  const key = p.tenant + "/" + p.pool;
  const h = history.get(key) || { last: null, granted: [], failed: [], wait: [] };
  if (h.last) {
    const granted = p.totals.granted - h.last.granted;
    h.granted.push(granted);
    h.failed.push(p.totals.failed - h.last.failed);
    h.wait.push(granted > 0 ? (p.totals.queueWaitSeconds - h.last.queueWaitSeconds) / granted : 0);
    for (const series of [h.granted, h.failed, h.wait]) while (series.length > KEEP) series.shift();
  }
  h.last = p.totals;
  history.set(key, h);
  const bar = STATES.map((s) => '<span title="' + s + '" style="width:' + (100 * p.counts[s] / p.maxSessions) + '%;background:var(--' + s + ')"></span>').join("");
  const cells = STATES.concat(["waiting"]).map((s) => '<div><dt>' + s + '</dt><dd data-field="' + s + '">' + p.counts[s] + '</dd></div>').join("");
  const queue = p.queue.length ? "<ol>" + p.queue.map((w) => "<li><code>" + esc(w.lease.slice(0, 8)) + "</code> since " + esc(w.since.slice(11, 19)) + "</li>").join("") + "</ol>" : '<p class="empty">nobody waiting</p>';
  const events = p.events.length ? "<ul>" + p.events.map((e) => "<li>" + esc(e.at.slice(11, 19)) + " <b>" + esc(e.event) + "</b>" + (e.lease ? " <code>" + esc(e.lease.slice(0, 8)) + "</code>" : "") + "</li>").join("") + "</ul>" : '<p class="empty">no events</p>';
  return "<h2><span>" + esc(key) + "</span><span>" +
    (p.draining ? '<span class="badge" data-field="draining">draining</span> ' : "") +
    (p.governorUnreachable ? '<span class="badge bad" data-field="governor">governor unreachable</span> ' : "") +
    breakerBadge(p.breaker, "breaker") + " " +
    '<span class="badge' + (p.consistent ? "" : " bad") + '" data-field="consistent">' + (p.consistent ? "consistent" : "INCONSISTENT") + "</span> " +
    '<span class="badge">max <b data-field="maxSessions">' + p.maxSessions + "</b></span></span></h2>" +
    '<div class="bar">' + bar + "</div><dl>" + cells + "</dl>" +
    '<div class="charts">' +
    '<div class="chart"><div class="label">acquires / ' + POLL_MS / 1000 + ' s (total <span data-field="granted">' + p.totals.granted + "</span>)</div>" + spark(h.granted, "var(--idle)") + "</div>" +
    '<div class="chart"><div class="label">failures / ' + POLL_MS / 1000 + ' s (total <span data-field="failed">' + p.totals.failed + "</span>)</div>" + spark(h.failed, "var(--bad)") + "</div>" +
    '<div class="chart"><div class="label">mean queue wait, s</div>' + spark(h.wait, "var(--launching)") + "</div>" +
    "</div><h3>Wait queue</h3>" + queue + "<h3>Recent events</h3>" + events;
}

/** The child of \`parent\` whose data-<name> is \`value\` (compared as data, so no selector escaping). */
function childWith(parent, name, value) {
  for (const child of parent.children) if (child.dataset[name] === value) return child;
  return null;
}

function render(data) {
  renderAccount(data.account);
  const main = document.getElementById("pools");
  const keys = new Set(data.pools.map((p) => p.tenant + "/" + p.pool));
  // Sections (and the lease tiles in them) are kept across polls, never re-created: an <iframe> re-created or moved reloads.
  for (const section of [...main.querySelectorAll("section.pool")]) if (!keys.has(section.dataset.pool)) section.remove();
  const empty = document.getElementById("nopools");
  if (data.pools.length === 0 && !empty) main.insertAdjacentHTML("beforeend", '<p class="empty" id="nopools">No pools yet.</p>');
  if (data.pools.length > 0 && empty) empty.remove();
  let previous = null;
  for (const p of data.pools) {
    const key = p.tenant + "/" + p.pool;
    let section = childWith(main, "pool", key);
    if (!section) {
      section = document.createElement("section");
      section.dataset.pool = key;
      section.innerHTML = '<div class="summary"></div><h3>Active leases <span data-field="leasesNote"></span></h3><div class="leases"></div>';
      main.insertBefore(section, previous ? previous.nextSibling : main.firstChild);
    }
    previous = section;
    section.className = "pool" + (p.consistent ? "" : " inconsistent");
    section.querySelector(".summary").innerHTML = summary(p);
    renderLeases(section, p);
  }
  thumbnails(main);
}

/** A pool's active leases: one tile each, created the first time the lease is listed, removed when it no longer is. */
function renderLeases(section, p) {
  const box = section.querySelector(".leases");
  const listed = new Set(p.leases.map((l) => l.id));
  for (const tile of [...box.children]) {
    if (listed.has(tile.dataset.lease)) continue;
    viewers.delete(tile.dataset.lease);
    tile.remove();
  }
  let previous = null;
  for (const lease of p.leases) {
    let tile = childWith(box, "lease", lease.id);
    if (!tile) {
      tile = document.createElement("figure");
      tile.className = "lease";
      tile.dataset.lease = lease.id;
      tile.innerHTML = '<div class="thumb"></div><figcaption><code>' + esc(lease.id.slice(0, 8)) + '</code><span data-field="expires"></span><button type="button">open viewer</button></figcaption>';
      tile.querySelector("button").addEventListener("click", () => openViewer(p.tenant, p.pool, lease.id));
      tile.lease = { tenant: p.tenant, pool: p.pool, id: lease.id };
      box.insertBefore(tile, previous ? previous.nextSibling : box.firstChild);
    }
    previous = tile;
    tile.querySelector('[data-field="expires"]').textContent = lease.expiresAt ? "until " + lease.expiresAt.slice(11, 19) : "";
  }
  section.querySelector('[data-field="leasesNote"]').textContent = p.leases.length === 0 ? "(none)" : p.moreLeases ? "(the oldest " + p.leases.length + "; more are active)" : "";
}

/** Viewer URLs minted by this page, by lease id: { url } once minted, { pending }, or { error, retryAt }. */
const viewers = new Map();

async function mintViewer(lease, interactive) {
  const path = "/v1/admin/pools/" + encodeURIComponent(lease.tenant) + "/" + encodeURIComponent(lease.pool) + "/leases/" + encodeURIComponent(lease.id) + "/viewer";
  const response = await fetch(path, { method: "POST", credentials: "same-origin", cache: "no-store", headers: { "content-type": "application/json" }, body: JSON.stringify({ interactive }) });
  const body = await response.json().catch(() => null);
  if (response.status !== 201 || !body || typeof body.viewerUrl !== "string") throw new Error((body && body.detail) || "HTTP " + response.status);
  return body.viewerUrl;
}

/** Gives tiles a live thumbnail, MAX_THUMBS at most (a tile keeps its own; freed ones go to the next in page order), minting each lease's view-only viewer once. */
function thumbnails(main) {
  const tiles = [...main.querySelectorAll("figure.lease")];
  let shown = tiles.filter((tile) => tile.dataset.thumb).length, without = 0;
  for (const tile of tiles) {
    const box = tile.querySelector(".thumb");
    if (!tile.dataset.thumb) {
      if (shown >= MAX_THUMBS) {
        without += 1;
        box.textContent = "no live view: " + MAX_THUMBS + " at most";
        continue;
      }
      shown += 1;
      tile.dataset.thumb = "1";
    }
    const known = viewers.get(tile.lease.id);
    if (known && (known.url || known.pending || known.retryAt > Date.now())) continue;
    viewers.set(tile.lease.id, { pending: true });
    box.textContent = "opening…";
    mintViewer(tile.lease, false).then((url) => {
      viewers.set(tile.lease.id, { url });
      const frame = document.createElement("iframe");
      const src = new URL(url);
      src.searchParams.set("compact", "1");
      frame.src = src.toString();
      frame.title = "live view of lease " + tile.lease.id;
      frame.referrerPolicy = "no-referrer";
      box.replaceChildren(frame);
    }, (error) => {
      viewers.set(tile.lease.id, { error: true, retryAt: Date.now() + MINT_RETRY_MS });
      box.textContent = "no live view: " + (error.message || error);
    });
  }
  document.getElementById("thumbs").textContent = without ? "live thumbnails for " + MAX_THUMBS + " leases at most (" + without + " without)" : "";
}

/** Opens a (view-only) viewer of the lease in a new tab: the session cookie mints no interactive viewer. */
async function openViewer(tenant, pool, id) {
  // Opened at the click, so no popup blocker stands in the way; pointed at the viewer once minted.
  const tab = window.open("", "_blank");
  if (tab) tab.opener = null;
  try {
    const url = await mintViewer({ tenant, pool, id }, false);
    if (tab) tab.location.replace(url);
    else window.open(url, "_blank", "noopener");
  } catch (error) {
    if (tab) tab.close();
    document.getElementById("error").textContent = "viewer of " + id.slice(0, 8) + ": " + (error.message || error);
  }
}

async function poll() {
  try {
    const response = await fetch("/dashboard/data", { credentials: "same-origin", cache: "no-store" });
    if (!response.ok) throw new Error("data: " + response.status);
    const data = await response.json();
    render(data);
    document.getElementById("updated").textContent = "updated " + data.at.slice(11, 19) + " UTC" + (data.truncated ? " (first 100 pools)" : "");
    document.getElementById("error").textContent = "";
    document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
  } catch (error) {
    document.getElementById("error").textContent = String(error.message || error);
  }
  setTimeout(poll, POLL_MS);
}
poll();
</script>
</body>
</html>
`;
