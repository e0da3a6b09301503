/**
 * The replay page of a recording: one self-contained HTML document (inline
 * CSS and script, the frames embedded as data, nothing loaded from anywhere)
 * that shows the recorded frames in order with play/pause, a timeline
 * scrubber on which the lease's journal events are marked (a click on a mark
 * or on an event in the list jumps there), and each frame's time.
 *
 * Time on the page is the recording's own: from the lease's start to its end.
 * Playing shows each frame for as long as it was on screen (the next frame's
 * time minus its own), at 1×, 2× or 4×.
 */
import type { RecordedFrame, RecordingManifest } from "../../recorder/store";

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
/** JSON safe inside a <script> element: no "</script>" or "<!--" can end or bend it. */
const scriptJson = (value: unknown) => JSON.stringify(value).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");

/** The page's Content-Security-Policy: its own inline style and script, and the frames as data: images. */
export const REPLAY_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:";

export function replayPage(manifest: RecordingManifest, frames: RecordedFrame[]): string {
  const title = `${escapeHtml(manifest.pool)} / ${escapeHtml(manifest.lease)}`;
  const data = scriptJson({ manifest, frames });
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Recording: ${title}</title>
<style>
  :root { --bg:#0f1419; --panel:#1a2129; --text:#e6e6e6; --muted:#8a949e; --accent:#4ea1ff; --mark:#f5b942; }
  * { box-sizing: border-box; }
  body { margin:0; background:var(--bg); color:var(--text); font:14px/1.4 system-ui, sans-serif; display:flex; flex-direction:column; height:100vh; }
  header { padding:8px 12px; background:var(--panel); display:flex; gap:16px; align-items:baseline; flex-wrap:wrap; }
  header h1 { font-size:15px; margin:0; }
  .muted { color:var(--muted); }
  main { flex:1; display:flex; min-height:0; }
  #stage { flex:1; display:flex; align-items:center; justify-content:center; min-width:0; background:#000; }
  #screen { max-width:100%; max-height:100%; object-fit:contain; }
  #empty { color:var(--muted); }
  aside { width:300px; overflow:auto; background:var(--panel); padding:8px; }
  aside h2 { font-size:13px; margin:4px 0 8px; color:var(--muted); }
  #events { list-style:none; margin:0; padding:0; }
  #events li { padding:4px 6px; border-radius:4px; cursor:pointer; }
  #events li:hover { background:#243040; }
  #events li.past { color:var(--muted); }
  #events .at { font-variant-numeric:tabular-nums; color:var(--mark); margin-right:6px; }
  footer { padding:8px 12px; background:var(--panel); display:flex; gap:12px; align-items:center; }
  button, select { background:#243040; color:var(--text); border:1px solid #34404d; border-radius:4px; padding:4px 10px; font:inherit; cursor:pointer; }
  #timeline { position:relative; flex:1; height:28px; }
  #scrub { position:absolute; inset:8px 0 auto 0; width:100%; margin:0; }
  .mark { position:absolute; top:0; width:3px; height:10px; margin-left:-1px; background:var(--mark); border-radius:1px; cursor:pointer; }
  #clock { font-variant-numeric:tabular-nums; min-width:190px; text-align:right; }
</style>
</head>
<body>
<header>
  <h1>Recording: ${title}</h1>
  <span class="muted" id="summary"></span>
</header>
<main>
  <div id="stage"><img id="screen" alt="recorded frame" hidden><span id="empty">no frames were recorded</span></div>
  <aside><h2>Journal</h2><ul id="events"></ul></aside>
</main>
<footer>
  <button id="play" type="button">Play</button>
  <select id="speed" aria-label="speed"><option value="1">1×</option><option value="2">2×</option><option value="4">4×</option></select>
  <div id="timeline"><input id="scrub" type="range" min="0" step="1" value="0" aria-label="timeline"></div>
  <span id="clock"></span>
</footer>
<script type="application/json" id="recording">${data}</script>
<script>
(() => {
  const { manifest, frames } = JSON.parse(document.getElementById("recording").textContent);
  const start = manifest.startedAt;
  const end = Math.max(manifest.endedAt, frames.length ? frames[frames.length - 1].t : start, start + 1);
  const $ = (id) => document.getElementById(id);
  const screen = $("screen"), scrub = $("scrub"), clock = $("clock"), play = $("play"), speed = $("speed");
  scrub.max = String(end - start);
  const pad = (n, w) => String(n).padStart(w, "0");
  const offset = (ms) => { const s = Math.floor(ms / 1000); return pad(Math.floor(s / 60), 2) + ":" + pad(s % 60, 2) + "." + pad(Math.floor(ms % 1000), 3); };
  const wall = (t) => new Date(t).toISOString().replace("T", " ").replace("Z", " UTC");
  $("summary").textContent = frames.length + " frames, " + offset(end - start) + ", up to " + manifest.fps + " fps" +
    (manifest.truncated ? " (truncated: the size limit was reached)" : "") + "; kept until " + wall(manifest.expiresAt);
  if (frames.length) { $("empty").hidden = true; screen.hidden = false; }

  // The frame on screen at time t: the last one at or before it.
  const frameAt = (t) => { let lo = 0, hi = frames.length - 1, found = -1; while (lo <= hi) { const mid = (lo + hi) >> 1; if (frames[mid].t <= t) { found = mid; lo = mid + 1; } else hi = mid - 1; } return found; };
  let now = start, shown = -2, playing = false, last = 0;
  const events = manifest.events.map((e) => ({ ...e, t: Date.parse(e.at) })).filter((e) => Number.isFinite(e.t));
  const items = events.map((e) => {
    const li = document.createElement("li");
    const at = document.createElement("span"); at.className = "at"; at.textContent = offset(Math.max(0, e.t - start));
    li.append(at, document.createTextNode(e.event));
    if (e.detail) li.title = JSON.stringify(e.detail);
    li.addEventListener("click", () => seek(e.t));
    $("events").append(li);
    const mark = document.createElement("div"); mark.className = "mark"; mark.title = e.event + " at " + offset(Math.max(0, e.t - start));
    mark.style.left = (100 * Math.min(1, Math.max(0, (e.t - start) / (end - start)))) + "%";
    mark.addEventListener("click", () => seek(e.t));
    $("timeline").append(mark);
    return li;
  });

  function render() {
    const i = frameAt(now);
    const index = i < 0 && frames.length ? 0 : i;
    if (index !== shown && index >= 0) { screen.src = "data:image/jpeg;base64," + frames[index].data; shown = index; }
    scrub.value = String(Math.round(now - start));
    clock.textContent = offset(now - start) + " / " + offset(end - start) + (index >= 0 ? "  frame " + (index + 1) + "/" + frames.length : "");
    clock.title = index >= 0 ? wall(frames[index].t) : "";
    events.forEach((e, k) => items[k].classList.toggle("past", e.t <= now));
  }
  function seek(t) { now = Math.min(end, Math.max(start, t)); render(); }
  function step(ts) {
    if (!playing) return;
    now += (ts - last) * Number(speed.value); last = ts;
    if (now >= end) { now = end; playing = false; play.textContent = "Play"; }
    render();
    if (playing) requestAnimationFrame(step);
  }
  play.addEventListener("click", () => {
    playing = !playing;
    play.textContent = playing ? "Pause" : "Play";
    if (playing) { if (now >= end) now = start; last = performance.now(); requestAnimationFrame(step); }
  });
  scrub.addEventListener("input", () => seek(start + Number(scrub.value)));
  document.addEventListener("keydown", (e) => { if (e.key === " ") { e.preventDefault(); play.click(); } });
  render();
})();
</script>
</body>
</html>`;
}
