/**
 * The live viewer's page: one self-contained HTML document (inline CSS and
 * script, no external assets, usable inside an <iframe>) that opens the
 * viewer's stream (engine.ts states the protocol), draws each frame into
 * `#screen` scaled to fit, acknowledges it once drawn (which is what paces the
 * stream), lists the browser's tabs (a click watches another one) and shows
 * the watched tab's URL and the stream's state in `#state` ("connecting",
 * "live", "ended", "disconnected").
 *
 * An interactive viewer maps the mouse and keyboard on `#screen` to the
 * page's CSS pixels with the frame's metadata (deviceWidth × deviceHeight is
 * what the shown image covers) and sends them; a read-only one says
 * "view only" and sends no input (the engine would ignore it anyway).
 *
 * Compact (a thumbnail, as the operators' dashboard embeds it): the screen
 * fills the frame, with the state badge and URL on one thin line over it; the
 * page name, mode and tab list are hidden.
 */

export interface ViewerPageOptions {
  /** The stream's WebSocket URL: ws(s)://… or relative to the page (its scheme then follows the page's, https → wss). */
  streamUrl: string;
  interactive: boolean;
  lease: string;
  pool: string;
  /** The thumbnail layout (see above). */
  compact?: boolean;
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
/** JSON safe inside a <script> element: no "</script>" or "<!--" can end or bend it. */
const scriptJson = (value: unknown) => JSON.stringify(value).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");

export function viewerPage(options: ViewerPageOptions): string {
  const config = scriptJson({ streamUrl: options.streamUrl, interactive: options.interactive });
  const title = `${escapeHtml(options.pool)} / ${escapeHtml(options.lease)}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Live view: ${title}</title>
<style>
  :root { --bg:#0f1419; --panel:#1a2129; --text:#e6e6e6; --muted:#8a949e; --live:#46c37b; --warn:#f5b942; --bad:#ff5c5c; }
  * { box-sizing: border-box; }
  html, body { height: 100%; }
  body { margin: 0; display: flex; flex-direction: column; font: 13px/1.4 system-ui, sans-serif; background: var(--bg); color: var(--text); }
  header { display: flex; gap: .75rem; align-items: center; padding: .4rem .75rem; border-bottom: 1px solid #2a333d; min-width: 0; }
  header .name { font-weight: 600; white-space: nowrap; }
  #url { flex: 1; min-width: 0; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; color: var(--muted); font-family: ui-monospace, monospace; font-size: 12px; }
  .badge { font-size: 11px; padding: .1rem .45rem; border-radius: 4px; background: #2a333d; white-space: nowrap; }
  #state[data-state="live"] { background: var(--live); color: #000; }
  #state[data-state="connecting"] { background: var(--warn); color: #000; }
  #state[data-state="ended"], #state[data-state="disconnected"] { background: var(--bad); color: #000; }
  #tabs { display: flex; gap: .25rem; padding: .3rem .75rem; overflow-x: auto; border-bottom: 1px solid #2a333d; }
  #tabs:empty { display: none; }
  #tabs button { max-width: 14rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; font: inherit; font-size: 12px; color: var(--text); background: var(--panel); border: 1px solid #2a333d; border-radius: 4px; padding: .15rem .5rem; cursor: pointer; }
  #tabs button[aria-current="true"] { border-color: var(--live); }
  #stage { flex: 1; min-height: 0; position: relative; display: flex; align-items: center; justify-content: center; overflow: hidden; outline: none; }
  #screen { display: block; background: #fff; user-select: none; -webkit-user-drag: none; }
  #screen:not([src]) { display: none; }
  #stage.interactive #screen { cursor: default; }
  #message { position: absolute; inset: auto 0 1rem 0; text-align: center; color: var(--muted); pointer-events: none; }
  body.compact header { position: absolute; top: 0; left: 0; right: 0; z-index: 1; gap: .35rem; padding: 2px 4px; border: 0; background: rgba(15, 20, 25, .7); }
  body.compact header .name, body.compact #mode, body.compact #tabs { display: none; }
  body.compact #url { font-size: 10px; }
  body.compact .badge { font-size: 10px; padding: 0 .3rem; }
  body.compact #message { inset: auto 0 .25rem 0; font-size: 11px; }
</style>
</head>
<body${options.compact ? ' class="compact"' : ""}>
<header>
  <span class="name">${title}</span>
  <span class="badge" id="state" data-state="connecting">connecting</span>
  <span class="badge" id="mode">${options.interactive ? "interactive" : "view only"}</span>
  <span id="url"></span>
</header>
<nav id="tabs" aria-label="tabs"></nav>
<div id="stage" tabindex="0"${options.interactive ? ' class="interactive"' : ""}>
  <img id="screen" alt="the leased browser's screen" draggable="false">
  <div id="message">connecting to the browser…</div>
</div>
<script>
"use strict";
const CONFIG = ${config};
const $ = (id) => document.getElementById(id);
const screen = $("screen"), stage = $("stage"), stateBadge = $("state"), message = $("message");
let socket, metadata = null, ended = false, shownTargetId = null;

function setState(state, text) {
  stateBadge.textContent = state;
  stateBadge.dataset.state = state;
  message.textContent = text || "";
}

function streamUrl() {
  const url = new URL(CONFIG.streamUrl, location.href);
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  return url.toString();
}

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

/** Scales the shown frame to fit the stage, up or down, keeping its proportions. */
function fit() {
  const w = screen.naturalWidth, h = screen.naturalHeight;
  if (!w || !h) return;
  const scale = Math.min(stage.clientWidth / w, stage.clientHeight / h);
  screen.style.width = Math.floor(w * scale) + "px";
  screen.style.height = Math.floor(h * scale) + "px";
}
window.addEventListener("resize", fit);

// Each frame is acknowledged once drawn (or found undrawable): the stream sends the next only then.
screen.addEventListener("load", () => { fit(); send({ type: "ack" }); });
screen.addEventListener("error", () => send({ type: "ack" }));

function showTabs(tabs) {
  const nav = $("tabs");
  nav.textContent = "";
  let active = null;
  for (const tab of tabs) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = tab.title || tab.url || "(blank)";
    button.title = tab.url;
    button.dataset.targetId = tab.targetId;
    button.setAttribute("aria-current", tab.active ? "true" : "false");
    button.addEventListener("click", () => send({ type: "switch", targetId: tab.targetId }));
    nav.appendChild(button);
    if (tab.active) active = tab;
  }
  $("url").textContent = active ? active.url : "";
  if (active) shownTargetId = active.targetId;
  if (!tabs.length && !ended) message.textContent = "the browser has no open tab";
  else if (message.textContent === "the browser has no open tab") message.textContent = "";
}

function connect() {
  setState("connecting", "connecting to the browser…");
  socket = new WebSocket(streamUrl());
  socket.addEventListener("message", (event) => {
    let m;
    try { m = JSON.parse(event.data); } catch { return; }
    if (!m || typeof m !== "object") return;
    if (m.type === "frame" && typeof m.data === "string") {
      metadata = m.metadata || null;
      screen.src = "data:image/jpeg;base64," + m.data;
      if (message.textContent === "connecting to the browser…") message.textContent = "";
    } else if (m.type === "tabs" && Array.isArray(m.tabs)) {
      showTabs(m.tabs);
    } else if (m.type === "state" && m.state === "connected") {
      setState("live", "");
    } else if (m.type === "state" && m.state === "ended") {
      ended = true;
      setState("ended", "the lease ended" + (m.reason ? " (" + m.reason + ")" : ""));
    }
  });
  socket.addEventListener("close", (event) => {
    if (ended) return;
    if (event.code === 4001) { ended = true; setState("ended", "the lease ended"); return; }
    setState("disconnected", "the stream closed" + (event.reason ? ": " + event.reason : "") + "; reload the page to reconnect");
  });
}

// ---- input (interactive only): page CSS pixels from the frame's metadata

/** The pointer's position in the watched page's CSS pixels, or null off the image or before the first frame. */
function pagePoint(event) {
  if (!metadata || !metadata.deviceWidth || !metadata.deviceHeight) return null;
  const r = screen.getBoundingClientRect();
  if (!r.width || !r.height) return null;
  const scale = metadata.pageScaleFactor || 1;
  const x = ((event.clientX - r.left) / r.width) * metadata.deviceWidth / scale;
  const y = ((event.clientY - r.top) / r.height) * metadata.deviceHeight / scale;
  return { x: Math.max(0, Math.min(metadata.deviceWidth, x)), y: Math.max(0, Math.min(metadata.deviceHeight, y)) };
}

const modifiers = (e) => (e.altKey ? 1 : 0) | (e.ctrlKey ? 2 : 0) | (e.metaKey ? 4 : 0) | (e.shiftKey ? 8 : 0);
const BUTTONS = ["left", "middle", "right", "back", "forward"];

function mouse(kind, e, extra) {
  const p = pagePoint(e);
  if (!p) return;
  send(Object.assign({ type: "mouse", event: kind, x: p.x, y: p.y, modifiers: modifiers(e), buttons: e.buttons & 31 }, extra));
}

if (CONFIG.interactive) {
  screen.addEventListener("mousedown", (e) => {
    e.preventDefault();
    stage.focus();
    mouse("mousePressed", e, { button: BUTTONS[e.button] || "left", clickCount: Math.min(3, Math.max(1, e.detail || 1)) });
  });
  window.addEventListener("mouseup", (e) => {
    if (e.target !== screen && !e.buttons && !stage.contains(e.target)) return;
    mouse("mouseReleased", e, { button: BUTTONS[e.button] || "left", clickCount: Math.min(3, Math.max(1, e.detail || 1)) });
  });
  // Moves are sent at most once per animation frame, the latest position winning.
  let move = null;
  screen.addEventListener("mousemove", (e) => {
    const pending = move;
    move = e;
    if (pending) return;
    requestAnimationFrame(() => {
      const last = move;
      move = null;
      if (last) mouse("mouseMoved", last, { button: last.buttons & 1 ? "left" : last.buttons & 4 ? "middle" : last.buttons & 2 ? "right" : "none", clickCount: 0 });
    });
  });
  screen.addEventListener("wheel", (e) => {
    e.preventDefault();
    const unit = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? stage.clientHeight : 1;
    mouse("mouseWheel", e, { button: "none", clickCount: 0, deltaX: Math.max(-10000, Math.min(10000, e.deltaX * unit)), deltaY: Math.max(-10000, Math.min(10000, e.deltaY * unit)) });
  }, { passive: false });
  screen.addEventListener("contextmenu", (e) => e.preventDefault());

  const TEXT_KEYS = { Enter: "\\r", Tab: "\\t" };
  const key = (kind, e) => {
    // Keys with the viewer's own shortcuts (Ctrl/Meta) still go to the page: the stage has the focus.
    e.preventDefault();
    const text = kind === "keyDown" && !e.ctrlKey && !e.metaKey ? (e.key.length === 1 ? e.key : TEXT_KEYS[e.key] || "") : "";
    send({ type: "key", event: kind, key: e.key.slice(0, 32), code: e.code.slice(0, 32), text, keyCode: (e.keyCode || 0) & 255, modifiers: modifiers(e) });
  };
  stage.addEventListener("keydown", (e) => key("keyDown", e));
  stage.addEventListener("keyup", (e) => key("keyUp", e));
}

connect();
</script>
</body>
</html>
`;
}
