// The admin's realtime dashboard: four metric cards, three line charts and a per-type table,
// from GET /api/metrics/ every few seconds (the seed's WebSocketPerformanceDashboard, without
// React or a chart library). Plain ES module, no dependencies.

const root = document.getElementById("realtime-dashboard");
const METRICS_URL = root?.dataset.metricsUrl || "/api/metrics/";
const REFRESH_MS = Number(root?.dataset.refreshSeconds || 5) * 1000;

const TYPE_ORDER = ["trip_collaboration", "chat", "agent_status", "notifications"];
const TYPE_LABELS = {
  trip_collaboration: "Trip collaboration",
  chat: "Chat",
  agent_status: "Agent status",
  notifications: "Notifications",
};

// The four cards: how to read each value from a response, how to show it, and which direction
// of change is good (errors and latency going up are bad).
const CARDS = {
  "active-connections": {
    read: (m) => m.global?.activeConnections ?? null,
    format: (v) => String(Math.round(v)),
    delta: (d) => String(Math.round(d)),
    upIsGood: true,
  },
  "messages-per-minute": {
    read: (m) => m.rates?.messages_per_minute ?? null,
    format: (v) => (v >= 100 ? String(Math.round(v)) : v.toFixed(1)),
    delta: (d) => (d >= 100 ? String(Math.round(d)) : d.toFixed(1)),
    upIsGood: true,
  },
  "average-latency": {
    read: (m) => m.global?.averageLatency ?? null,
    format: (v) => `${v.toFixed(1)} ms`,
    delta: (d) => `${d.toFixed(1)} ms`,
    upIsGood: false,
  },
  "error-rate": {
    read: (m) => m.rates?.error_rate_percent ?? null,
    format: (v) => `${v.toFixed(1)}%`,
    delta: (d) => `${d.toFixed(1)} pt`,
    upIsGood: false,
  },
};

const CHARTS = {
  connections: { key: "active_connections", color: "#417690", integer: true },
  latency: { key: "average_latency_ms", color: "#6941c6", unit: " ms" },
  errors: { key: "errors_per_minute", color: "#ba2121" },
};

const state = { previous: null, last: null, inFlight: false, timer: null };

function $(selector) {
  return root.querySelector(selector);
}

function pad(n) {
  return String(n).padStart(2, "0");
}

function clock(date) {
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

function isNumber(v) {
  return typeof v === "number" && Number.isFinite(v);
}

// --- cards -----------------------------------------------------------------------------------

function renderCards(metrics, previous) {
  for (const [name, card] of Object.entries(CARDS)) {
    const el = root.querySelector(`.metric-card[data-metric="${name}"]`);
    if (!el) continue;
    const value = card.read(metrics);
    el.querySelector(".metric-value").textContent = isNumber(value) ? card.format(value) : "—";
    const change = el.querySelector(".metric-change");
    const before = previous ? card.read(previous) : null;
    if (!isNumber(value) || !isNumber(before)) {
      change.textContent = previous ? "—" : "\u00a0";
      change.dataset.trend = "none";
      continue;
    }
    const diff = value - before;
    if (Math.abs(diff) < 1e-9 || card.delta(Math.abs(diff)) === card.delta(0)) {
      change.textContent = "no change";
      change.dataset.trend = "flat";
    } else {
      const up = diff > 0;
      change.textContent = `${up ? "▲" : "▼"} ${card.delta(Math.abs(diff))}`;
      change.dataset.trend = up === card.upIsGood ? "good" : "bad";
    }
    change.title = "Change since the previous refresh";
  }
}

// --- charts ----------------------------------------------------------------------------------

function cssVar(name, fallback) {
  const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return value || fallback;
}

function niceMax(max) {
  if (!(max > 0)) return 1;
  const exponent = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (max <= step * exponent) return step * exponent;
  }
  return 10 * exponent;
}

function axisLabel(value, chart) {
  if (chart.integer || Number.isInteger(value)) return `${value}${chart.unit || ""}`;
  return `${value.toFixed(value < 10 ? 1 : 0)}${chart.unit || ""}`;
}

function drawChart(canvas, history, chart) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);

  const fg = cssVar("--body-quiet-color", "#666");
  const grid = cssVar("--hairline-color", "#e8e8e8");
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = fg;

  const points = history
    .map((row) => ({ t: Date.parse(row.at), v: row[chart.key] }))
    .filter((p) => Number.isFinite(p.t));
  const values = points.map((p) => p.v).filter(isNumber);

  const left = 46;
  const right = 10;
  const top = 10;
  const bottom = 24;
  const plotW = width - left - right;
  const plotH = height - top - bottom;

  if (points.length === 0 || values.length === 0) {
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText("No data yet", width / 2, height / 2);
    return;
  }

  const yMax = niceMax(Math.max(...values));
  const tMin = points[0].t;
  const tMax = Math.max(points[points.length - 1].t, tMin + 1000);
  const x = (t) => left + ((t - tMin) / (tMax - tMin)) * plotW;
  const y = (v) => top + plotH - (v / yMax) * plotH;

  // Grid lines and y labels: 0, half, max.
  ctx.strokeStyle = grid;
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const fraction of [0, 0.5, 1]) {
    const value = yMax * fraction;
    const py = Math.round(y(value)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(left, py);
    ctx.lineTo(left + plotW, py);
    ctx.stroke();
    ctx.fillText(axisLabel(value, chart), left - 6, py);
  }
  // Axes.
  ctx.strokeStyle = fg;
  ctx.beginPath();
  ctx.moveTo(left + 0.5, top);
  ctx.lineTo(left + 0.5, top + plotH + 0.5);
  ctx.lineTo(left + plotW, top + plotH + 0.5);
  ctx.stroke();
  // x labels: first, middle, last bucket.
  ctx.textBaseline = "top";
  // HH:MM, or HH:MM:SS while the history is short (a fresh server).
  const hhmm = (t) => {
    const d = new Date(t);
    const minutes = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    return tMax - tMin < 10 * 60 * 1000 ? `${minutes}:${pad(d.getSeconds())}` : minutes;
  };
  ctx.textAlign = "left";
  ctx.fillText(hhmm(tMin), left, top + plotH + 6);
  ctx.textAlign = "center";
  ctx.fillText(hhmm((tMin + tMax) / 2), left + plotW / 2, top + plotH + 6);
  ctx.textAlign = "right";
  ctx.fillText(hhmm(tMax), left + plotW, top + plotH + 6);

  // The line (broken where a bucket has no value), with a light fill under it.
  ctx.strokeStyle = chart.color;
  ctx.lineWidth = 2;
  ctx.lineJoin = "round";
  let segment = [];
  const segments = [];
  for (const p of points) {
    if (isNumber(p.v)) {
      segment.push([x(p.t), y(p.v)]);
    } else if (segment.length) {
      segments.push(segment);
      segment = [];
    }
  }
  if (segment.length) segments.push(segment);
  for (const seg of segments) {
    ctx.beginPath();
    seg.forEach(([px, py], i) => (i ? ctx.lineTo(px, py) : ctx.moveTo(px, py)));
    if (seg.length === 1) ctx.arc(seg[0][0], seg[0][1], 2, 0, 2 * Math.PI);
    ctx.stroke();
    if (seg.length > 1) {
      ctx.save();
      ctx.globalAlpha = 0.12;
      ctx.fillStyle = chart.color;
      ctx.lineTo(seg[seg.length - 1][0], top + plotH);
      ctx.lineTo(seg[0][0], top + plotH);
      ctx.closePath();
      ctx.fill();
      ctx.restore();
    }
  }
}

function renderCharts(metrics) {
  const history = Array.isArray(metrics.history) ? metrics.history : [];
  for (const [name, chart] of Object.entries(CHARTS)) {
    const canvas = root.querySelector(`.metric-chart[data-chart="${name}"] canvas`);
    if (canvas) drawChart(canvas, history, chart);
  }
}

// --- table and footer ------------------------------------------------------------------------

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function renderByType(metrics) {
  const byType = metrics.by_type || {};
  const names = [
    ...TYPE_ORDER.filter((name) => name in byType),
    ...Object.keys(byType)
      .filter((name) => !TYPE_ORDER.includes(name))
      .sort(),
  ];
  const body = $(".by-type-rows");
  const rows = names.map((name) => {
    const t = byType[name] || {};
    const tr = document.createElement("tr");
    tr.dataset.type = name;
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = TYPE_LABELS[name] || name;
    tr.append(
      th,
      cell(String(t.active_connections ?? 0), "num active"),
      cell(String(t.messages_received ?? 0), "num received"),
      cell(String(t.messages_sent ?? 0), "num sent"),
      cell(String(t.errors ?? 0), "num errors"),
      cell(isNumber(t.average_latency_ms) ? `${t.average_latency_ms.toFixed(1)} ms` : "—", "num latency"),
    );
    return tr;
  });
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    const td = cell("No connections recorded yet.");
    td.colSpan = 6;
    tr.append(td);
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}

function renderFooter(metrics) {
  const g = metrics.global || {};
  const since = isNumber(g.uptime) ? ` · counting since ${new Date(g.uptime).toLocaleString()}` : "";
  $(".totals").textContent =
    `Totals: ${g.totalConnections ?? 0} connections, ${g.totalMessagesReceived ?? 0} messages in, ` +
    `${g.totalMessagesSent ?? 0} out, ${g.totalErrors ?? 0} errors${since}.`;
  const processes = Array.isArray(metrics.processes) ? metrics.processes : [];
  $(".processes").textContent = processes.length
    ? ` Server processes: ${processes
        .map((p) => `${p.process} (${p.active_connections ?? 0} active)`)
        .join(", ")}.`
    : "";
}

// --- fetch loop ------------------------------------------------------------------------------

function showError(message) {
  const el = $(".fetch-error");
  el.textContent = message;
  el.hidden = !message;
}

function render(metrics) {
  renderCards(metrics, state.previous);
  renderCharts(metrics);
  renderByType(metrics);
  renderFooter(metrics);
  $(".last-updated").textContent = `Last updated ${clock(new Date())}`;
}

export async function fetchMetrics() {
  if (state.inFlight) return state.last;
  state.inFlight = true;
  try {
    const response = await fetch(METRICS_URL, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      cache: "no-store",
    });
    const type = response.headers.get("Content-Type") || "";
    if (!response.ok || !type.includes("json")) {
      const why =
        response.status === 401 || response.status === 403 || response.redirected
          ? "not signed in as staff (sign in to the admin again)"
          : `HTTP ${response.status}`;
      throw new Error(why);
    }
    const metrics = await response.json();
    state.previous = state.last;
    state.last = metrics;
    render(metrics);
    showError("");
    return metrics;
  } catch (error) {
    showError(`Could not load metrics at ${clock(new Date())}: ${error.message || error}`);
    return null;
  } finally {
    state.inFlight = false;
  }
}

function start() {
  if (!root) return;
  window.realtimeDashboard = { fetchMetrics, state };
  fetchMetrics();
  state.timer = setInterval(fetchMetrics, REFRESH_MS);
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => state.last && renderCharts(state.last), 150);
  });
}

start();
