// fakewatch dashboard: no build step. State comes from /api/stream (Server-Sent Events); frames are polled from
// /api/cameras/<name>/latest.jpg a few times a second (the server encodes each camera at most jpeg_fps times a second).
"use strict";
const TOKEN = new URLSearchParams(location.search).get("token");
const FRAME_MS = 250;          // frame refresh per tile
const SPAN_S = 300;            // longest sparkline span (the server keeps the same history)
const MIN_SPAN_S = 60;         // a young history is spread over at least this span
const MAX_EVENTS = 50;         // events listed
const tiles = new Map();       // camera name -> {el, history, ...}
let threshold = 0.5;

function api(path, extra) {
  const q = new URLSearchParams(extra || {});
  if (TOKEN) q.set("token", TOKEN);
  const s = q.toString();
  return path + (s ? "?" + s : "");
}
function cameraPath(name) { return "api/cameras/" + encodeURIComponent(name); }
function fmt(x, digits) { return x === null || x === undefined ? "–" : Number(x).toFixed(digits); }

function tileFor(name) {
  let t = tiles.get(name);
  if (t) return t;
  const el = document.getElementById("tile-template").content.firstElementChild.cloneNode(true);
  el.dataset.camera = name;
  el.querySelector(".name").textContent = name;
  el.querySelector(".name").title = name;
  document.getElementById("cameras").appendChild(el);
  t = {name, el, history: [], img: el.querySelector(".frame"), seq: null};
  tiles.set(name, t);
  pollFrame(t);
  return t;
}

function pollFrame(t) {
  // the next request only after this one finished: a slow link gets fewer frames, never a backlog
  const next = () => setTimeout(() => pollFrame(t), FRAME_MS);
  t.img.onload = next;
  t.img.onerror = () => setTimeout(() => pollFrame(t), 1000);
  t.img.src = api(cameraPath(t.name) + "/latest.jpg", {t: Date.now()});
}

function setState(t, state, score) {
  const b = t.el.querySelector(".state");
  b.textContent = state;
  b.className = "state badge " + state.toLowerCase();
  t.el.classList.toggle("fake", state === "FAKE");
  if (state === "UNKNOWN") score = null;      // no current verdict: no score either, never the last one
  if (score !== undefined) t.el.querySelector(".score").textContent = fmt(score, 2);
}

function setStatus(t, status, message) {
  const b = t.el.querySelector(".status");
  b.textContent = status;
  b.className = "status badge " + status;
  b.title = message || "";
}

function setStats(t, c) {
  t.el.querySelector(".fps").textContent = fmt(c.fps, 1);
  t.el.querySelector(".dropped").textContent = c.dropped ?? "–";
  t.el.querySelector(".p50").textContent = fmt(c.latency_ms && c.latency_ms.p50, 1);
  t.el.querySelector(".p99").textContent = fmt(c.latency_ms && c.latency_ms.p99, 1);
  if (c.score !== null && c.score !== undefined && c.state !== "UNKNOWN")
    t.el.querySelector(".score").textContent = fmt(c.score, 2);
}

function addPoint(t, p) {
  t.history.push(p);
  const cut = Date.now() / 1000 - SPAN_S;
  while (t.history.length && t.history[0][0] < cut) t.history.shift();
  drawSpark(t);
}

function drawSpark(t) {
  const svg = t.el.querySelector(".spark");
  const y = v => (40 - v * 40).toFixed(1);
  svg.querySelector(".thr").setAttribute("y1", y(threshold));
  svg.querySelector(".thr").setAttribute("y2", y(threshold));
  const now = Date.now() / 1000;
  const span = Math.min(SPAN_S, Math.max(MIN_SPAN_S, t.history.length ? now - t.history[0][0] : 0));
  const pts = t.history.filter(p => p[1] !== null)
    .map(p => ((300 * (p[0] - (now - span))) / span).toFixed(1) + "," + y(p[1]));
  svg.querySelector(".line").setAttribute("points", pts.join(" "));
  svg.setAttribute("aria-label", "rolling P(fake) over the last " + Math.round(span) + " s");
  svg.querySelector("title") || svg.appendChild(document.createElementNS("http://www.w3.org/2000/svg", "title"));
  svg.querySelector("title").textContent = "rolling P(fake), last " + Math.round(span) + " s (dashed: threshold)";
}

function renderCamera(c) {
  const t = tileFor(c.name);
  setState(t, c.state, c.score);
  setStatus(t, c.status, c.message);
  setStats(t, c);
  if (c.history) { t.history = c.history.slice(); drawSpark(t); }
}

function renderEvent(e) {
  const list = document.getElementById("events");
  let li = list.querySelector(`li[data-id="${CSS.escape(e.id)}"]`);
  if (!li) {
    li = document.createElement("li");
    li.className = "event";
    li.dataset.id = e.id;
    list.prepend(li);
    while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
  }
  const ev = "api/events/" + encodeURIComponent(e.id);
  const when = new Date(e.start_time * 1000).toLocaleTimeString();
  const ended = e.end_time ? " – " + new Date(e.end_time * 1000).toLocaleTimeString() : " (ongoing)";
  li.innerHTML = "";
  if (e.has_snapshot) {
    const a = document.createElement("a");
    a.href = api(ev + "/snapshot.jpg");
    a.target = "_blank";
    const img = document.createElement("img");
    img.className = "thumb";
    img.alt = "evidence";
    let tries = 0;     // the evidence writer may still be writing the file: retry a few times
    img.onerror = () => { if (tries++ < 5) setTimeout(() => { img.src = api(ev + "/crop.jpg", {r: tries}); }, 500); };
    img.src = api(ev + "/crop.jpg");
    a.appendChild(img);
    li.appendChild(a);
  }
  const text = document.createElement("div");
  const b = document.createElement("b");
  b.textContent = e.camera + " FAKE";
  text.appendChild(b);
  text.appendChild(document.createElement("br"));
  text.appendChild(document.createTextNode("top " + fmt(e.top_score, 2) + " · " + e.type));
  const w = document.createElement("div");
  w.className = "when";
  w.textContent = when + ended;
  text.appendChild(w);
  li.appendChild(text);
}

function connect() {
  const link = document.getElementById("link");
  const es = new EventSource(api("api/stream"));
  const on = (kind, fn) => es.addEventListener(kind, m => fn(JSON.parse(m.data)));
  on("hello", d => {
    threshold = d.threshold;
    d.cameras.forEach(renderCamera);
    d.events.slice().reverse().forEach(renderEvent);
    link.textContent = "live"; link.className = "badge live";
  });
  on("state", d => setState(tileFor(d.camera), d.state, d.score === null ? undefined : d.score));
  on("status", d => setStatus(tileFor(d.camera), d.status, d.message));
  on("score", d => addPoint(tileFor(d.camera), d.point));
  on("camera", d => setStats(tileFor(d.name), d));
  on("event", renderEvent);
  es.onerror = () => { link.textContent = "reconnecting"; link.className = "badge reconnecting"; };
}

fetch(api("api/cameras")).then(r => r.json()).then(d => {
  document.getElementById("model").textContent = d.model + " on " + d.backend;
}).catch(() => {});
connect();
