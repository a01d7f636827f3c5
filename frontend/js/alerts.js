// The planner's alert list: open alerts from the live `alerts` topic, each dismissable.
// Self-contained on purpose (its own websocket, its own element): it needs nothing from the
// map's modules, and the rest of the dashboard needs nothing from it. Dismissals are kept in
// this browser (localStorage); they hide an alert here, they do not end it on the server.

const DISMISSED_KEY = "mobility.alerts.dismissed";
const DISMISSED_MAX = 500;
const BACKOFF_START_MS = 500;
const BACKOFF_MAX_MS = 30000;

const alerts = new Map(); // alert id -> fields (rule_name, subject, state, evidence, …)
let dismissed = loadDismissed();
let lastSeq = null;
let backoff = BACKOFF_START_MS;
let socket = null;

function loadDismissed() {
  try {
    const raw = window.localStorage.getItem(DISMISSED_KEY);
    return new Set(raw ? JSON.parse(raw) : []);
  } catch {
    return new Set();
  }
}

function saveDismissed() {
  try {
    const ids = [...dismissed].slice(-DISMISSED_MAX);
    window.localStorage.setItem(DISMISSED_KEY, JSON.stringify(ids));
  } catch {
    // Private mode or storage full: the dismissal still holds for this page.
  }
}

function panel() {
  let root = document.getElementById("alerts");
  if (root) return root;
  root = document.createElement("aside");
  root.id = "alerts";
  root.className = "alerts";
  root.hidden = true;
  root.setAttribute("aria-label", "Alerts");
  const title = document.createElement("h2");
  title.className = "alerts-title";
  const list = document.createElement("ul");
  list.className = "alerts-list";
  list.setAttribute("aria-live", "polite");
  root.append(title, list);
  const main = document.querySelector("main") || document.body.firstChild;
  document.body.insertBefore(root, main);
  return root;
}

function timeOf(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

// The evidence the server recorded, in words; the values are the server's, never recomputed here.
function evidenceText(a) {
  const e = (a.state === "ended" ? a.end_evidence : a.evidence) || {};
  if (a.kind === "parking_almost_full") {
    const occ = e.occupancy_pct == null ? "" : ` (${e.occupancy_pct} % full)`;
    return `${e.free ?? "?"} free of ${e.capacity ?? "?"}${occ}`;
  }
  if (a.kind === "congestion") return `${e.segments_at_level ?? "?"} segment(s) ${e.level || ""} or worse`;
  if (a.kind === "feed") {
    return e.stale ? "no fresh data" : `${e.consecutive_failures ?? "?"} failed polls in a row`;
  }
  return "";
}

function render() {
  const root = panel();
  const list = root.querySelector(".alerts-list");
  const visible = [...alerts.entries()]
    .filter(([id]) => !dismissed.has(id))
    .sort((a, b) => String(b[1].started_at).localeCompare(String(a[1].started_at)));
  list.replaceChildren(
    ...visible.map(([id, a]) => {
      const item = document.createElement("li");
      item.className = "alert-item";
      item.dataset.alertId = id;
      item.dataset.state = a.state || "active";
      const text = document.createElement("span");
      text.className = "alert-text";
      const when = a.state === "ended" ? `ended ${timeOf(a.ended_at)}` : `since ${timeOf(a.started_at)}`;
      text.textContent = `${a.rule_name} — ${evidenceText(a)} — ${when}`;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "alert-dismiss";
      button.textContent = "Dismiss";
      button.setAttribute("aria-label", `Dismiss alert ${a.rule_name}`);
      button.addEventListener("click", () => {
        dismissed.add(id);
        saveDismissed();
        render();
      });
      item.append(text, button);
      return item;
    }),
  );
  const active = visible.filter(([, a]) => a.state !== "ended").length;
  root.querySelector(".alerts-title").textContent = `Alerts (${active} active)`;
  root.hidden = visible.length === 0;
}

function handle(message) {
  switch (message.type) {
    case "hello":
      send({ type: "subscribe", topics: ["alerts"], ...(lastSeq == null ? {} : { since: lastSeq }), id: "alerts" });
      break;
    case "subscribed":
      if (message.mode === "snapshot") alerts.clear();
      lastSeq = message.seq;
      break;
    case "snapshot":
      for (const item of message.items) alerts.set(item.id, item.fields);
      lastSeq = message.seq;
      render();
      break;
    case "delta":
      if (message.topic !== "alerts") break;
      alerts.set(message.id, { ...(alerts.get(message.id) || {}), ...message.fields });
      lastSeq = message.seq;
      render();
      break;
    case "reset":
      lastSeq = null;
      send({ type: "subscribe", topics: ["alerts"], id: "alerts" });
      break;
    case "error":
      // e.g. forbidden_topic when an operator keeps alerts off the public topics: say so once.
      if (message.id === "alerts" || message.code === "forbidden_topic") {
        const root = panel();
        root.querySelector(".alerts-title").textContent = `Alerts unavailable: ${message.message}`;
        root.hidden = false;
      }
      break;
    default:
      break;
  }
}

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function connect() {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  let ws;
  try {
    ws = new WebSocket(`${scheme}//${window.location.host}/ws`);
  } catch {
    retry();
    return;
  }
  socket = ws;
  ws.addEventListener("open", () => {
    backoff = BACKOFF_START_MS;
  });
  ws.addEventListener("message", (event) => {
    try {
      handle(JSON.parse(event.data));
    } catch {
      // A message we cannot read changes nothing on screen.
    }
  });
  ws.addEventListener("close", () => {
    if (socket === ws) socket = null;
    retry();
  });
  ws.addEventListener("error", () => {});
}

function retry() {
  const delay = Math.min(backoff, BACKOFF_MAX_MS) * (0.8 + Math.random() * 0.4);
  backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
  setTimeout(connect, delay);
}

panel();
connect();
