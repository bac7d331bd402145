// The trip editing page: two sockets (trip collaboration and chat) through the browser client in
// clients/js, and nothing else. Field edits go live after a short pause in typing, based on the
// trip version the user started editing from, so two people typing into one field conflict.
//
// Offline (docs/client.md, "The trip page offline"): edits and chat messages go through an
// OfflineOutbox kept in localStorage per user and trip, sent after the sockets are back and
// have caught up; the last snapshot is kept per user and trip too, and a service worker
// (/trips/sw.js) keeps the page and its files, so a reload without network still shows the trip
// with the edits waiting to be sent.

import { createHistoryPanel } from "./trip-history.js";

const app = document.getElementById("app");
const client = await import(app.dataset.client);
const { WebSocketConnection, ConnectionLifecycleManager, OptimisticUpdateManager, OfflineOutbox, WebSocketMetricsCollector } = client;

const TRIP_ID = Number(app.dataset.tripId);
const TYPING_PAUSE_MS = 400;
const EDITING_RENEW_MS = 15000;
const NOTE_MS = 10000;
const CHAT_KEPT = 50; // chat messages kept with the snapshot for an offline reload
const FIELDS = ["name", "destination", "start_date", "end_date", "budget", "currency", "notes"];
const STATUS_TEXT = {
  connecting: "Connecting...",
  connected: "Connected",
  reconnecting: "Reconnecting...",
  disconnected: "Disconnected",
};

const $ = (selector, root = document) => root.querySelector(selector);
const wsBase = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;
const isOffline = () => navigator.onLine === false;

/** Resolves at once when the browser says it is online, else at its next `online` event. */
function whenOnline() {
  if (!isOffline()) return Promise.resolve();
  return new Promise((resolve) => window.addEventListener("online", () => resolve(), { once: true }));
}

/** A fetch that failed for want of a network (not an HTTP answer). */
class NetworkDown extends Error {}

async function request(url, options) {
  try {
    return await fetch(url, options);
  } catch (cause) {
    throw new NetworkDown(`No connection (${cause?.message || cause})`);
  }
}

// -- sign-in -----------------------------------------------------------------------------------

function tokenPayload(token) {
  try {
    return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  } catch {
    return null;
  }
}

function tokenExpiry(token) {
  const exp = tokenPayload(token)?.exp;
  return Number.isFinite(exp) ? exp * 1000 : Date.now() + 5 * 60 * 1000;
}

async function postJSON(url, body) {
  const response = await request(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data?.error?.message || `HTTP ${response.status}`);
  return data;
}

const auth = {
  access: sessionStorage.getItem("tripsage.access"),
  refresh: sessionStorage.getItem("tripsage.refresh"),
  session: app.dataset.session === "1",
  store(access, refresh) {
    this.access = access;
    sessionStorage.setItem("tripsage.access", access);
    if (refresh) {
      this.refresh = refresh;
      sessionStorage.setItem("tripsage.refresh", refresh);
    }
  },
  async renew() {
    if (this.session) {
      const response = await request("/trips/session-token/", { credentials: "same-origin" });
      if (!response.ok) throw new Error("Session ended");
      this.store((await response.json()).access);
    } else if (this.refresh) {
      this.store((await postJSON("/api/auth/token/refresh/", { refresh: this.refresh })).access);
    } else {
      throw new Error("Not signed in");
    }
    return this.access;
  },
  valid() {
    return this.access && tokenExpiry(this.access) - Date.now() > 30000;
  },
  /** Who this page is for, without the network: the session's user, else the kept token's
   * (as a string: the token's claim may be one). */
  knownUserId() {
    if (this.session) return app.dataset.userId || null;
    return this.userId();
  },
  userId() {
    const id = this.access ? tokenPayload(this.access)?.user_id : null;
    return id == null ? null : String(id);
  },
};

/** Renew the token, waiting for the network as long as it takes: without one, the page keeps
 * working from what it kept, and tries again on `online`. */
async function renewWhenOnline() {
  for (;;) {
    await whenOnline();
    try {
      return await auth.renew();
    } catch (error) {
      if (!(error instanceof NetworkDown) && !isOffline()) throw error;
      setOfflineStatus();
      await new Promise((resolve) => {
        window.addEventListener("online", resolve, { once: true });
        if (!isOffline()) setTimeout(resolve, 5000); // the network failed while "online"
      });
    }
  }
}

async function signIn() {
  // A session's page always asks for its own token: one kept from before a switch of user
  // would be the last user's.
  if (auth.session) {
    await renewWhenOnline();
    return;
  }
  if (auth.valid() || auth.refresh) {
    try {
      if (!auth.valid()) await renewWhenOnline();
      return;
    } catch {
      /* fall through to the form */
    }
  }
  const form = $("#signin");
  form.hidden = false;
  form.username.focus();
  await new Promise((resolve) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const data = await postJSON("/api/auth/token/", {
          username: form.username.value,
          password: form.password.value,
        });
        auth.store(data.access, data.refresh);
        form.remove(); // the page keeps one submit button: the trip form's
        resolve();
      } catch (error) {
        showError(`Sign-in failed: ${error.message}`);
      }
    });
  });
}

// -- page state --------------------------------------------------------------------------------

const state = {
  me: null,
  role: null,
  version: 0,
  values: {},
  fieldVersions: {},
  editing: {}, // field -> {base, dirty, timer, renewTimer, sentValue, closing}
  conflict: null,
  chatSeqs: new Set(),
  chatLog: [], // the newest chat messages, kept with the snapshot
  lastBy: {}, // field -> who else changed it last (for "merged with X's change")
  loaded: false, // a snapshot (live or kept) is shown
};

const inputFor = (field) => $(`:is(input, textarea)[data-field="${field}"]`, $("#trip-form"));
const labelFor = (field) => $(`label[for="${inputFor(field).id}"]`).textContent;

function showError(text) {
  const box = $(".error-message");
  box.textContent = text;
  box.hidden = !text;
}

function showRateLimit(details) {
  // A refused token refresh: the connection sends it again after retry_after by itself
  // (clients/js setToken); the user's messages are not held back, so there is nothing to show.
  if (details?.limit_type === "auth.refresh") return;
  const box = $(".rate-limit-notice");
  const seconds = Math.max(0.1, Number(details?.retry_after) || 1);
  box.textContent = `Rate limit reached: ${details?.limit ?? "?"} messages per ${details?.window_seconds ?? 60} s. Try again in ${seconds.toFixed(1)} s.`;
  box.hidden = false;
  clearTimeout(showRateLimit.timer);
  showRateLimit.timer = setTimeout(() => (box.hidden = true), Math.max(seconds * 1000, 4000));
}

function showFieldNote(field, text) {
  const note = $(`.field-note[data-for="${field}"]`);
  if (!note) return;
  note.textContent = text;
  clearTimeout(note.timer);
  note.timer = setTimeout(() => (note.textContent = ""), NOTE_MS);
}

function renderField(field, force = false) {
  const input = inputFor(field);
  const editing = state.editing[field];
  if (!force && editing?.dirty) return; // never overwrite what the user is typing
  const value = state.values[field];
  input.value = value === null || value === undefined ? "" : String(value);
}

function renderAll(force = false) {
  for (const field of FIELDS) renderField(field, force);
  $(".trip-title").textContent = state.values.name || "";
  const viewer = state.role === "viewer";
  for (const field of FIELDS) inputFor(field).disabled = viewer;
  $('#trip-form button[type="submit"]').disabled = viewer;
  $(".role").textContent = state.role ? `(${state.role})` : "";
  historyPanel.setReadOnly(viewer);
}

function renderPresence(message) {
  if (message.collaborator_count !== undefined) {
    $(".collaborator-count").textContent = String(message.collaborator_count);
  }
  if (message.collaborators) {
    const list = $(".collaborators");
    list.replaceChildren(
      ...message.collaborators.map((c) => {
        const span = document.createElement("span");
        span.className = "who";
        span.textContent = c.user.username;
        return span;
      }),
    );
  }
}

function renderEditing(entries) {
  for (const holder of document.querySelectorAll(".indicators")) holder.replaceChildren();
  for (const entry of entries || []) {
    if (state.me && entry.user.id === state.me.id) continue;
    const holder = $(`.indicators[data-for="${entry.field}"]`);
    if (!holder) continue;
    const span = document.createElement("span");
    span.className = "editing-indicator";
    span.dataset.user = entry.user.username;
    span.textContent = `${entry.user.username} is editing`;
    holder.append(span);
  }
}

function applyFieldChange(field, value, fieldVersion, version, fromMe) {
  state.values[field] = value;
  if (fieldVersion !== undefined) state.fieldVersions[field] = fieldVersion;
  if (version !== undefined) state.version = Math.max(state.version, version);
  if (!fromMe) renderField(field);
  if (field === "name") $(".trip-title").textContent = value || "";
  keepSnapshot();
}

// -- what is kept for an offline reload ------------------------------------------------------
// The last snapshot (fields, versions, role, who I am, the newest chat messages) per user and
// trip; never a token. The outbox keeps the edits and messages themselves.

const SNAPSHOT_PREFIX = "tripsage.trip.v1";
let snapshotKey = null;

let keepTimer = null;

/** Keep the snapshot soon (a burst of events is written once). */
function keepSnapshot() {
  if (keepTimer === null) keepTimer = setTimeout(keepSnapshotNow, 250);
}

function keepSnapshotNow() {
  clearTimeout(keepTimer);
  keepTimer = null;
  if (!snapshotKey || !state.loaded) return;
  try {
    localStorage.setItem(
      snapshotKey,
      JSON.stringify({
        me: state.me,
        role: state.role,
        version: state.version,
        values: state.values,
        fieldVersions: state.fieldVersions,
        chat: state.chatLog,
      }),
    );
  } catch {
    /* storage full or refused: the live page goes on */
  }
}

function keptSnapshot(userId) {
  try {
    return JSON.parse(localStorage.getItem(`${SNAPSHOT_PREFIX}.${userId}.${TRIP_ID}`) || "null");
  } catch {
    return null;
  }
}

// -- the outbox ---------------------------------------------------------------------------------

let outbox = null;

function renderOutbox() {
  const box = $(".outbox-status");
  if (!outbox) return;
  let edits = 0;
  let messages = 0;
  const waiting = new Set();
  for (const entry of outbox.waitingEntries()) {
    waiting.add(entry.id);
    if (entry.kind === "edit") edits++;
    else messages++;
  }
  const parts = [];
  if (edits) parts.push(`${edits} ${edits === 1 ? "change" : "changes"}`);
  if (messages) parts.push(`${messages} ${messages === 1 ? "message" : "messages"}`);
  box.textContent = parts.length ? `${parts.join(" and ")} waiting to be sent` : "";
  box.hidden = parts.length === 0;
  const kept = new Set(outbox.entries.map((entry) => entry.id));
  for (const item of document.querySelectorAll(".chat-messages li.pending")) {
    if (!kept.has(item.dataset.clientId)) item.remove();
    else $(".waiting", item).hidden = !waiting.has(item.dataset.clientId);
  }
}

function openOutbox(userId) {
  outbox = new OfflineOutbox({ userId, tripId: TRIP_ID });
  outbox.on("change", renderOutbox);
  // A posted message's ack carries it: shown in its place at once (its chat.message follows).
  outbox.on("settled", ({ answer }) => {
    if (answer.type === "ack" && answer.message?.seq !== undefined) addChatMessage(answer.message);
  });
  outbox.on("refused", ({ entry, error }) => {
    if (entry.kind === "message") showError(`Message not sent: ${error.error?.message ?? "refused"}`);
  });
  outbox.on("error", () => showError("This browser refused to keep the unsent changes: keep this tab open until they are sent."));
  // Another tab of the same user and trip changed the outbox.
  window.addEventListener("storage", (event) => {
    if (event.key === outbox.key) outbox.refresh();
  });
}

/** What was kept before the reload: shown as waiting, and pending in the optimistic manager. */
function restoreOutbox() {
  for (const entry of outbox.entries) {
    if (entry.kind === "edit") {
      const editing = (state.editing[entry.field] ??= { base: entry.base_version, timer: null });
      Object.assign(editing, { dirty: true, closing: true, sentValue: entry.value });
      inputFor(entry.field).value = entry.value === null ? "" : String(entry.value);
      optimistic.applyOptimisticUpdate(updateFor(entry));
    } else {
      showPendingChat(entry);
    }
  }
  renderOutbox();
}

const updateFor = (entry) => ({
  id: entry.update_id,
  resourceType: "trip",
  resourceId: TRIP_ID,
  field: entry.field,
  value: entry.value,
  data: { [entry.field]: entry.value },
  baseVersion: entry.base_version,
});

// -- the trip socket -----------------------------------------------------------------------

let trip;

// Edits are shown at once (the user typed them), confirmed by their ack, rolled back when the
// server refuses them, and handed to the conflict dialog when someone else got there first.
const optimistic = new OptimisticUpdateManager(null, {
  applyToUI: () => {
    $(".save-state").textContent = trip?.isConnected ? "Saving..." : "Not sent yet";
  },
  rollbackUI: (update) => {
    const editing = state.editing[update.field];
    if (editing) {
      editing.dirty = false;
      editing.sentValue = undefined;
    }
    renderField(update.field, true);
    $(".save-state").textContent = "Not saved";
    settle(update.field);
  },
  onConflict: ({ update }) => {
    $(".save-state").textContent = "Conflict";
    settle(update.field);
  },
});
// The server merged the edit with changes made since its base: the merged text is in force.
// Unless the user typed on meanwhile, the field shows it; otherwise their next update keeps the
// old base, so the server merges it again rather than overwriting the other change.
optimistic.on("merged", ({ update, value }) => {
  const input = inputFor(update.field);
  const editing = state.editing[update.field];
  const typedSince = input.value !== String(update.proposedValue ?? "");
  if (editing) editing.keepBase = typedSince;
  if (!typedSince) {
    input.value = value === null ? "" : String(value);
    if (editing) editing.dirty = false;
  }
  const who = state.lastBy[update.field]?.username;
  showFieldNote(update.field, `Merged with ${who ? `${who}'s` : "another"} change`);
});
optimistic.on("confirmed", (update, ack) => {
  if (ack.type !== "ack") return;
  applyFieldChange(update.field, ack.value, undefined, ack.version, true);
  const editing = state.editing[update.field];
  if (editing) {
    // The user goes on from the version their edit made.
    if (!editing.keepBase) editing.base = ack.version;
    editing.keepBase = false;
    if (inputFor(update.field).value === String(ack.value ?? "")) editing.dirty = false;
  }
  $(".save-state").textContent = optimistic.pendingUpdates.size ? "Saving..." : "Saved";
  settle(update.field);
});

const pendingFor = (field) => [...optimistic.pendingUpdates.values()].some((u) => u.field === field);

function settle(field) {
  if (state.editing[field]?.closing && !pendingFor(field)) delete state.editing[field];
}

/** Ephemeral messages (editing and typing indicators) only go over a live socket: queued while
 * offline they would announce, much later, something no longer true. */
function sendLive(connection, message) {
  if (connection?.isConnected) connection.send(message);
}

/** One change of a field, through the outbox (sent now when connected, kept until answered). */
function propose(field, value, baseVersion) {
  if (!outbox) return;
  const entry = outbox.addEdit({ field, value, baseVersion });
  optimistic.applyOptimisticUpdate(updateFor(entry));
}

function sendUpdate(field) {
  const editing = state.editing[field];
  if (!editing) return;
  clearTimeout(editing.timer);
  editing.timer = null;
  const input = inputFor(field);
  const value = input.value === "" && field !== "name" ? null : input.value;
  if (value === state.values[field] && editing.sentValue === undefined) return;
  if (value === editing.sentValue) return;
  editing.sentValue = value;
  propose(field, value, editing.base);
}

function startEditing(field) {
  if (state.role === "viewer") return;
  let editing = state.editing[field];
  if (!editing) {
    // The version this edit is based on: the trip as the user saw it when they started.
    editing = state.editing[field] = { base: state.version, dirty: false, timer: null };
  }
  if (!editing.renewTimer) {
    editing.closing = false;
    sendLive(trip, { type: "editing.start", field });
    editing.renewTimer = setInterval(() => sendLive(trip, { type: "editing.start", field }), EDITING_RENEW_MS);
  }
  return editing;
}

function stopEditing(field) {
  const editing = state.editing[field];
  if (!editing) return;
  if (editing.timer) sendUpdate(field);
  clearInterval(editing.renewTimer);
  editing.renewTimer = null;
  sendLive(trip, { type: "editing.stop", field });
  // Keep the record until the last update is answered (its ack moves the base on).
  editing.closing = true;
  settle(field);
}

/** Restore a value from the field's history: an ordinary edit on the version the page has. */
function restoreValue(field, value) {
  const editing = (state.editing[field] ??= { base: state.version, timer: null });
  clearTimeout(editing.timer);
  Object.assign(editing, { base: state.version, dirty: true, closing: !editing.renewTimer, sentValue: value });
  inputFor(field).value = value === null ? "" : String(value);
  propose(field, value, state.version);
}

function showConflict(conflict) {
  if (!state.me) return;
  if (conflict.status && conflict.status !== "open") return;
  const mineIsProposed = conflict.proposed?.by?.id === state.me.id;
  const mineIsApplied = conflict.applied?.by?.id === state.me.id;
  if (!mineIsProposed && !mineIsApplied) return;
  state.conflict = conflict;
  const dialog = $(".conflict-dialog");
  $(".conflict-field", dialog).textContent = conflict.field;
  const mine = mineIsProposed ? conflict.proposed.value : conflict.applied.value;
  const theirs = mineIsProposed ? conflict.applied.value : conflict.proposed.value;
  const them = mineIsProposed ? conflict.applied.by : conflict.proposed.by;
  $(".conflict-mine", dialog).textContent = String(mine ?? "");
  $(".conflict-theirs", dialog).textContent = String(theirs ?? "");
  $(".conflict-by", dialog).textContent = them ? `(${them.username})` : "";
  dialog.hidden = false;
  $(".conflict-notice").textContent =
    `Conflict on ${conflict.field}: yours ${String(mine ?? "")}, theirs ${String(theirs ?? "")}` +
    `${them ? ` by ${them.username}` : ""}. Choose which to keep.`;
}

function resolveConflict(choice) {
  if (!state.conflict) return;
  trip.send({ type: "conflict.resolve", conflict_id: state.conflict.id, choice });
  $(".conflict-dialog").hidden = true;
  $(".conflict-notice").textContent = "";
}

function showSnapshot(snapshot) {
  state.role = snapshot.role;
  state.version = snapshot.trip.version;
  state.values = { ...snapshot.trip.fields };
  state.fieldVersions = { ...snapshot.trip.field_versions };
  state.loaded = true;
  renderAll();
  keepSnapshot();
}

function onTripMessage(message) {
  switch (message.type) {
    case "trip.snapshot": {
      showSnapshot(message);
      renderPresence(message);
      renderEditing(message.editing);
      for (const conflict of message.conflicts || []) showConflict(conflict);
      break;
    }
    case "trip.updated":
      if (message.by && state.me && message.by.id !== state.me.id) state.lastBy[message.field] = message.by;
      applyFieldChange(message.field, message.value, message.version, message.version, false);
      historyPanel.changed(message.field);
      break;
    case "presence.update":
      renderPresence(message);
      break;
    case "editing.update":
      renderEditing(message.editing);
      break;
    case "ack":
      optimistic.handleMessage(message);
      break;
    case "conflict.detected":
      state.version = Math.max(state.version, message.version ?? state.version);
      showConflict(message.conflict);
      break;
    case "conflict.resolved":
      if (state.conflict && state.conflict.id === message.conflict.id) {
        state.conflict = null;
        $(".conflict-dialog").hidden = true;
        $(".conflict-notice").textContent = "";
      }
      // The value in force now wins over what was typed into this field.
      if (state.editing[message.conflict.field]) state.editing[message.conflict.field].dirty = false;
      renderField(message.conflict.field, true);
      break;
    case "resync.required":
      if (message.snapshot) onTripMessage({ type: "trip.snapshot", ...message.snapshot });
      break;
    case "member.updated":
      if (state.me && message.user.id === state.me.id) {
        state.role = message.role;
        renderAll();
        keepSnapshot();
      }
      break;
    case "rate_limit_status":
      // burst_remaining: what may be sent now (remaining is the seed's count of the minute).
      if ((message.burst_remaining ?? message.remaining) === 0) showRateLimit({ ...message, retry_after: 60 / message.limit });
      break;
    case "error":
      if (message.error.code === "AUTHORIZATION_FAILED") showNotMember();
      if (message.error.code === "RATE_LIMIT_EXCEEDED") showRateLimit(message.error.details);
      else showError(message.error.message);
      optimistic.handleMessage(message);
      break;
    default:
      break;
  }
}

// Refused by the trip's socket (not a member, or no longer one): nothing to edit is left on the
// page, and the sockets stop trying.
function showNotMember() {
  $(".workspace")?.remove();
  $(".conflict-dialog")?.remove();
  $(".not-member").hidden = false;
  trip?.disconnect();
  chat?.disconnect();
}

// -- chat ----------------------------------------------------------------------------------

let chat;

function chatItem(author, text) {
  const li = document.createElement("li");
  const who = document.createElement("span");
  who.className = "author";
  who.textContent = author;
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text; // plain text, never HTML
  li.append(who, body);
  return li;
}

function addChatMessage(item) {
  if (state.chatSeqs.has(item.seq)) return;
  state.chatSeqs.add(item.seq);
  state.chatLog = [...state.chatLog, item].sort((a, b) => a.seq - b.seq).slice(-CHAT_KEPT);
  if (item.client_id) $(`.chat-messages li.pending[data-client-id="${item.client_id}"]`)?.remove();
  const li = chatItem(item.author ? item.author.username : "someone", item.text);
  li.dataset.seq = String(item.seq);
  const list = $(".chat-messages");
  const after = [...list.children].find((other) => other.classList.contains("pending") || Number(other.dataset.seq) > item.seq);
  list.insertBefore(li, after || null);
  list.scrollTop = list.scrollHeight;
}

/** A message typed but not yet posted: at the end of the list, marked as waiting. */
function showPendingChat(entry) {
  const li = chatItem(state.me?.username ?? "me", entry.text);
  li.classList.add("pending");
  li.dataset.clientId = entry.client_id;
  const mark = document.createElement("span");
  mark.className = "waiting";
  mark.textContent = "waiting to be sent";
  li.append(mark);
  const list = $(".chat-messages");
  list.append(li);
  list.scrollTop = list.scrollHeight;
}

const typists = new Map();

function onChatMessage(message) {
  if (message.type === "chat.history") {
    message.messages.forEach(addChatMessage);
    keepSnapshot();
  } else if (message.type === "chat.message") {
    addChatMessage(message.message);
    keepSnapshot();
  } else if (message.type === "typing.update") {
    if (message.typing) typists.set(message.user.username, Date.parse(message.expires_at));
    else typists.delete(message.user.username);
    renderTyping();
  } else if (message.type === "error" && message.error.code === "RATE_LIMIT_EXCEEDED") {
    showRateLimit(message.error.details);
  }
}

function renderTyping() {
  const now = Date.now();
  for (const [name, until] of typists) if (until <= now) typists.delete(name);
  $(".typing").textContent = typists.size ? `${[...typists.keys()].join(", ")} typing...` : "";
}
setInterval(renderTyping, 1000);

// -- history -------------------------------------------------------------------------------

const historyPanel = createHistoryPanel({
  tripId: TRIP_ID,
  panel: $(".history-panel"),
  buttons: document.querySelectorAll(".history-button"),
  labelFor,
  currentValue: (field) => state.values[field] ?? null,
  restore: restoreValue,
  fetchJSON: async (url) => {
    if (!auth.valid()) await auth.renew();
    let response = await request(url, { headers: { Authorization: `Bearer ${auth.access}` } });
    if (response.status === 401) {
      await auth.renew();
      response = await request(url, { headers: { Authorization: `Bearer ${auth.access}` } });
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data?.error?.message || `HTTP ${response.status}`);
    return data;
  },
});

// -- wiring --------------------------------------------------------------------------------

const statusLine = $(".connection-status");

function setOfflineStatus() {
  statusLine.textContent = "Offline";
  statusLine.dataset.state = "offline";
}

function connectStream(path, onMessage) {
  const connection = new WebSocketConnection({
    url: `${wsBase}${path}`,
    token: auth.access,
    reconnectAttempts: Infinity,
    heartbeatInterval: 30000,
    // main() opens the sockets (connect()) once the network is up and the token valid.
    autoConnect: false,
  });
  metrics.track(connection); // before its socket opens: every frame is counted
  connection.on("message", onMessage);
  connection.on("established", (message) => {
    state.me = message.user;
    $(".whoami").textContent = message.user.username;
  });
  connection.on("error", (error) => {
    if (error?.code === "AUTHORIZATION_FAILED") showNotMember();
    if (error?.code === "AUTHENTICATION_FAILED") {
      renewWhenOnline()
        .then((token) => {
          connection.setToken(token);
          connection.reconnect();
        })
        .catch(() => showError("Signed out: reload the page to sign in again."));
    }
  });
  return connection;
}

/** Show the trip as it was last seen by this user on this browser, with what waits to be sent. */
function showKept(userId) {
  const kept = keptSnapshot(userId);
  if (kept) {
    state.me = kept.me;
    if (kept.me) $(".whoami").textContent = kept.me.username;
    showSnapshot({ role: kept.role, trip: { version: kept.version, fields: kept.values, field_versions: kept.fieldVersions } });
    (kept.chat || []).forEach(addChatMessage);
    $(".workspace").hidden = false;
  }
  restoreOutbox();
}

/** The page and its files kept by the service worker, for a reload without network. */
function registerServiceWorker() {
  if (!("serviceWorker" in navigator) || !app.dataset.serviceWorker) return Promise.resolve(false);
  return navigator.serviceWorker
    .register(app.dataset.serviceWorker)
    .then(() => navigator.serviceWorker.ready)
    .then(
      (registration) =>
        new Promise((resolve) => {
          // Everything this load fetched before the worker was in control: the page, its styles,
          // scripts and the client's modules. The worker keeps only its own kinds of URL.
          const urls = [location.pathname + location.search, ...performance.getEntriesByType("resource").map((e) => e.name)];
          const channel = new MessageChannel();
          channel.port1.onmessage = () => resolve(true);
          registration.active.postMessage({ type: "tripsage.keep", urls }, [channel.port2]);
        }),
    )
    .catch(() => false);
}

async function main() {
  const refused = $("[data-origin-refused]");
  if (refused) {
    // The server refuses sockets from this page's origin (the banner says why and what to
    // change): no connect loop that could only ever show "Reconnecting...".
    statusLine.textContent = "Cannot connect: this page's origin is refused";
    statusLine.dataset.state = "refused";
    return;
  }
  window.tripsage.offlineReady = registerServiceWorker();
  const known = auth.knownUserId();
  if (known != null) {
    openOutbox(known);
    snapshotKey = `${SNAPSHOT_PREFIX}.${known}.${TRIP_ID}`;
    showKept(known);
  }
  if (isOffline()) setOfflineStatus();

  await signIn();
  const userId = auth.userId();
  if (known != null && userId !== known) {
    // Someone else signed in in this tab (or the kept page was another user's): what is shown is
    // the other user's. A reload starts over as this one (once: never a reload loop).
    if (sessionStorage.getItem("tripsage.switched-to") !== userId) {
      sessionStorage.setItem("tripsage.switched-to", userId);
      location.reload();
    } else {
      showError("This page was kept for another user: reload it.");
    }
    return;
  }
  sessionStorage.removeItem("tripsage.switched-to");
  if (!outbox) {
    openOutbox(userId);
    snapshotKey = `${SNAPSHOT_PREFIX}.${userId}.${TRIP_ID}`;
    restoreOutbox();
  }
  $("#signin")?.remove(); // the page keeps one submit button: the trip form's
  $(".workspace").hidden = false;
  trip = connectStream(`/ws/trips/${TRIP_ID}/`, onTripMessage);
  chat = connectStream(`/ws/chat/${TRIP_ID}/`, onChatMessage);
  // Edits and messages (kept ones included) go once each socket has caught up; the server
  // applies each update_id / client_id once, so sending again after a drop is safe.
  outbox.attach(trip, "trip");
  outbox.attach(chat, "chat");
  const lifecycle = new ConnectionLifecycleManager(trip, { window });
  new ConnectionLifecycleManager(chat, { window });
  const showState = (value) => {
    if (value !== "connected" && isOffline()) return setOfflineStatus();
    statusLine.textContent = STATUS_TEXT[value] || value;
    statusLine.dataset.state = value;
  };
  lifecycle.on("stateChange", showState);
  window.addEventListener("offline", () => showState(trip.state));
  showState(isOffline() ? "disconnected" : "connecting");

  // Renew the token before it expires; the sockets take it in band (auth.refresh).
  setInterval(async () => {
    if (tokenExpiry(auth.access) - Date.now() < 90000) {
      try {
        const token = await auth.renew();
        trip.setToken(token);
        chat.setToken(token);
      } catch (error) {
        // Without network it is tried again at the next tick, and on reconnecting (4001).
        if (!(error instanceof NetworkDown)) showError("Signed out: reload the page to sign in again.");
      }
    }
  }, 30000);

  // Started offline: the sockets open when the network is back (the lifecycle managers take
  // over from their first connection on).
  await whenOnline();
  if (!auth.valid()) {
    const token = await renewWhenOnline();
    trip.setToken(token);
    chat.setToken(token);
  }
  await Promise.allSettled([trip.connect(), chat.connect()]);
}

function wireForm() {
  const form = $("#trip-form");
  for (const field of FIELDS) {
    const input = inputFor(field);
    input.addEventListener("focus", () => startEditing(field));
    input.addEventListener("input", () => {
      const editing = startEditing(field);
      if (!editing) return;
      editing.dirty = true;
      editing.sentValue = undefined;
      clearTimeout(editing.timer);
      editing.timer = setTimeout(() => sendUpdate(field), TYPING_PAUSE_MS);
    });
    input.addEventListener("blur", () => stopEditing(field));
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    for (const field of Object.keys(state.editing)) sendUpdate(field);
  });
  // Leaving (a reload, a closed tab) before the typing pause is over: what was typed goes into
  // the outbox now, so it is sent later rather than lost.
  window.addEventListener("pagehide", () => {
    for (const [field, editing] of Object.entries(state.editing)) if (editing.timer) sendUpdate(field);
    if (keepTimer !== null) keepSnapshotNow();
  });
  $(".use-mine").addEventListener("click", () => resolveConflict("mine"));
  $(".use-theirs").addEventListener("click", () => resolveConflict("theirs"));

  const chatForm = $(".chat-form");
  let lastTyping = 0;
  chatForm.chatText.addEventListener("input", () => {
    if (Date.now() - lastTyping > 3000) {
      lastTyping = Date.now();
      sendLive(chat, { type: "typing.start" });
    }
  });
  const sendChat = (event) => {
    event.preventDefault();
    const text = chatForm.chatText.value.trim();
    if (!text || !outbox) return;
    showPendingChat(outbox.addMessage({ text }));
    renderOutbox();
    sendLive(chat, { type: "typing.stop" });
    lastTyping = 0;
    chatForm.chatText.value = "";
  };
  chatForm.addEventListener("submit", sendChat);
  $(".chat-send", chatForm).addEventListener("click", sendChat);
}

window.tripsage = {
  get trip() {
    return trip;
  },
  get chat() {
    return chat;
  },
  get outbox() {
    return outbox;
  },
  state,
  offlineReady: Promise.resolve(false),
};

// -- connection metrics (docs/client.md, "Metrics") ----------------------------------------------
// Each socket's figures as the client counts them (the server's for the same socket are at
// /api/metrics/connections/<connection_id>/), shown in the "Connection" details.

const metrics = new WebSocketMetricsCollector();
window.tripsage.metrics = metrics;

function showMetrics() {
  for (const [name, connection] of [["trip", trip], ["chat", chat]]) {
    const row = document.querySelector(`.connection-metrics tr[data-socket="${name}"]`);
    const current = connection ? metrics.getTrackedMetrics(connection) : undefined;
    const totals = connection ? metrics.getTrackedTotals(connection) : undefined;
    if (!row || !current) continue;
    const ms = (value) => `${value < 10 ? value.toFixed(1) : Math.round(value)} ms`;
    // Measured by the client's heartbeat pings (every 30 s): none before the first pong.
    const latency = current.peakLatency > 0 ? `${ms(current.averageLatency)} (peak ${ms(current.peakLatency)})` : "–";
    $(".metric-latency", row).textContent = latency;
    $(".metric-sent", row).textContent = String(current.messagesSent);
    $(".metric-received", row).textContent = String(current.messagesReceived);
    $(".metric-reconnects", row).textContent = String(totals.reconnectAttempts);
    row.dataset.connectionId = current.connectionId;
  }
}
setInterval(showMetrics, 1000);
$(".connection-details").addEventListener("toggle", showMetrics);

wireForm();
main().catch((error) => showError(error.message));
