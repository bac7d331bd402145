// The trip editing page: two sockets (trip collaboration and chat) through the browser client in
// clients/js, and nothing else. Field edits go live after a short pause in typing, based on the
// trip version the user started editing from, so two people typing into one field conflict.

const app = document.getElementById("app");
const client = await import(app.dataset.client);
const { WebSocketConnection, ConnectionLifecycleManager, OptimisticUpdateManager, tripUpdateMessage } =
  client;

const TRIP_ID = Number(app.dataset.tripId);
const TYPING_PAUSE_MS = 400;
const EDITING_RENEW_MS = 15000;
const FIELDS = ["name", "destination", "start_date", "end_date", "budget", "currency", "notes"];
const STATUS_TEXT = {
  connecting: "Connecting...",
  connected: "Connected",
  reconnecting: "Reconnecting...",
  disconnected: "Disconnected",
};

const $ = (selector, root = document) => root.querySelector(selector);
const wsBase = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;

// -- sign-in -----------------------------------------------------------------------------------

function tokenExpiry(token) {
  try {
    const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return payload.exp * 1000;
  } catch {
    return Date.now() + 5 * 60 * 1000;
  }
}

async function postJSON(url, body) {
  const response = await fetch(url, {
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
      const response = await fetch("/trips/session-token/", { credentials: "same-origin" });
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
};

async function signIn() {
  // A session's page always asks for its own token: one kept from before a switch of user
  // would be the last user's.
  if (auth.session) {
    await auth.renew();
    return;
  }
  if (auth.valid() || auth.refresh) {
    try {
      if (!auth.valid()) await auth.renew();
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
};

const inputFor = (field) => $(`:is(input, textarea)[data-field="${field}"]`, $("#trip-form"));

function showError(text) {
  const box = $(".error-message");
  box.textContent = text;
  box.hidden = !text;
}

function showRateLimit(details) {
  const box = $(".rate-limit-notice");
  const seconds = Math.max(0.1, Number(details?.retry_after) || 1);
  box.textContent = `Rate limit reached: ${details?.limit ?? "?"} messages per ${details?.window_seconds ?? 60} s. Try again in ${seconds.toFixed(1)} s.`;
  box.hidden = false;
  clearTimeout(showRateLimit.timer);
  showRateLimit.timer = setTimeout(() => (box.hidden = true), Math.max(seconds * 1000, 4000));
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
}

// -- the trip socket -----------------------------------------------------------------------

let trip;

// Edits are shown at once (the user typed them), confirmed by their ack, rolled back when the
// server refuses them, and handed to the conflict dialog when someone else got there first.
const optimistic = new OptimisticUpdateManager(null, {
  applyToUI: () => {
    $(".save-state").textContent = "Saving...";
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
optimistic.on("confirmed", (update, ack) => {
  if (ack.type !== "ack") return;
  applyFieldChange(update.field, ack.value, undefined, ack.version, true);
  const editing = state.editing[update.field];
  if (editing) {
    editing.base = ack.version; // the user goes on from the version their edit made
    if (inputFor(update.field).value === String(ack.value ?? "")) editing.dirty = false;
  }
  $(".save-state").textContent = optimistic.pendingUpdates.size ? "Saving..." : "Saved";
  settle(update.field);
});

const pendingFor = (field) => [...optimistic.pendingUpdates.values()].some((u) => u.field === field);

function settle(field) {
  if (state.editing[field]?.closing && !pendingFor(field)) delete state.editing[field];
}

async function sendUpdate(field) {
  const editing = state.editing[field];
  if (!editing) return;
  clearTimeout(editing.timer);
  editing.timer = null;
  const input = inputFor(field);
  const value = input.value === "" && field !== "name" ? null : input.value;
  if (value === state.values[field] && editing.sentValue === undefined) return;
  if (value === editing.sentValue) return;
  editing.sentValue = value;
  const update = await optimistic.applyOptimisticUpdate({
    resourceType: "trip",
    resourceId: TRIP_ID,
    field,
    value,
    data: { [field]: value },
    baseVersion: editing.base,
  });
  trip.send(tripUpdateMessage(update));
}

function startEditing(field) {
  if (state.role === "viewer") return;
  let editing = state.editing[field];
  if (!editing) {
    // The version this edit is based on: the trip as the user saw it when they started.
    editing = state.editing[field] = { base: state.version, dirty: false, timer: null };
    trip.send({ type: "editing.start", field });
    editing.renewTimer = setInterval(() => trip.send({ type: "editing.start", field }), EDITING_RENEW_MS);
  }
  return editing;
}

function stopEditing(field) {
  const editing = state.editing[field];
  if (!editing) return;
  if (editing.timer) sendUpdate(field);
  clearInterval(editing.renewTimer);
  trip.send({ type: "editing.stop", field });
  // Keep the record until the last update is answered (its ack moves the base on).
  editing.closing = true;
  settle(field);
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

function onTripMessage(message) {
  switch (message.type) {
    case "trip.snapshot": {
      state.role = message.role;
      state.version = message.trip.version;
      state.values = { ...message.trip.fields };
      state.fieldVersions = { ...message.trip.field_versions };
      renderAll();
      renderPresence(message);
      renderEditing(message.editing);
      for (const conflict of message.conflicts || []) showConflict(conflict);
      break;
    }
    case "trip.updated":
      applyFieldChange(message.field, message.value, message.version, message.version, false);
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
      }
      break;
    case "rate_limit_status":
      if (message.remaining === 0) showRateLimit({ ...message, retry_after: 60 / message.limit });
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

function addChatMessage(item) {
  if (state.chatSeqs.has(item.seq)) return;
  state.chatSeqs.add(item.seq);
  const li = document.createElement("li");
  li.dataset.seq = String(item.seq);
  const author = document.createElement("span");
  author.className = "author";
  author.textContent = item.author ? item.author.username : "someone";
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = item.text; // plain text, never HTML
  li.append(author, text);
  const list = $(".chat-messages");
  const after = [...list.children].find((other) => Number(other.dataset.seq) > item.seq);
  list.insertBefore(li, after || null);
  list.scrollTop = list.scrollHeight;
}

const typists = new Map();
// Chat sends not yet acknowledged, by client_id: sent again after a reconnect (the server posts
// a client_id once), so a message typed just before a drop is not lost.
const unackedChat = new Map();

function onChatMessage(message) {
  if (message.type === "ack" && message.message?.client_id) {
    unackedChat.delete(message.message.client_id);
  }
  if (message.type === "chat.history") message.messages.forEach(addChatMessage);
  else if (message.type === "chat.message") addChatMessage(message.message);
  else if (message.type === "typing.update") {
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

// -- wiring --------------------------------------------------------------------------------

function connectStream(path, onMessage) {
  const connection = new WebSocketConnection({
    url: `${wsBase}${path}`,
    token: auth.access,
    reconnectAttempts: Infinity,
    heartbeatInterval: 30000,
  });
  connection.on("message", onMessage);
  connection.on("established", (message) => {
    state.me = message.user;
    $(".whoami").textContent = message.user.username;
  });
  connection.on("error", (error) => {
    if (error?.code === "AUTHORIZATION_FAILED") showNotMember();
    if (error?.code === "AUTHENTICATION_FAILED") {
      auth
        .renew()
        .then((token) => {
          connection.setToken(token);
          connection.reconnect();
        })
        .catch(() => showError("Signed out: reload the page to sign in again."));
    }
  });
  return connection;
}

async function main() {
  const refused = $("[data-origin-refused]");
  if (refused) {
    // The server refuses sockets from this page's origin (the banner says why and what to
    // change): no connect loop that could only ever show "Reconnecting...".
    const status = $(".connection-status");
    status.textContent = "Cannot connect: this page's origin is refused";
    status.dataset.state = "refused";
    return;
  }
  await signIn();
  $("#signin")?.remove(); // the page keeps one submit button: the trip form's
  $(".workspace").hidden = false;
  trip = connectStream(`/ws/trips/${TRIP_ID}/`, onTripMessage);
  chat = connectStream(`/ws/chat/${TRIP_ID}/`, onChatMessage);
  // After a reconnect, what was sent but never answered goes again: update_id and client_id
  // make the server apply each once, so nothing typed before a drop is lost.
  trip.on("reconnected", () => {
    for (const update of optimistic.pendingUpdates.values()) trip.send(tripUpdateMessage(update));
  });
  chat.on("reconnected", () => {
    for (const send of unackedChat.values()) chat.send(send);
  });
  const lifecycle = new ConnectionLifecycleManager(trip, { window });
  new ConnectionLifecycleManager(chat, { window });
  const status = $(".connection-status");
  const showState = (value) => {
    status.textContent = STATUS_TEXT[value] || value;
    status.dataset.state = value;
  };
  lifecycle.on("stateChange", showState);
  showState("connecting");

  // Renew the token before it expires; the sockets take it in band (auth.refresh).
  setInterval(async () => {
    if (tokenExpiry(auth.access) - Date.now() < 90000) {
      try {
        const token = await auth.renew();
        trip.setToken(token);
        chat.setToken(token);
      } catch {
        showError("Signed out: reload the page to sign in again.");
      }
    }
  }, 30000);

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
  $(".use-mine").addEventListener("click", () => resolveConflict("mine"));
  $(".use-theirs").addEventListener("click", () => resolveConflict("theirs"));

  const chatForm = $(".chat-form");
  let lastTyping = 0;
  chatForm.chatText.addEventListener("input", () => {
    if (Date.now() - lastTyping > 3000) {
      lastTyping = Date.now();
      chat.send({ type: "typing.start" });
    }
  });
  const sendChat = (event) => {
    event.preventDefault();
    const text = chatForm.chatText.value.trim();
    if (!text) return;
    const send = { type: "chat.send", text, client_id: crypto.randomUUID() };
    unackedChat.set(send.client_id, send);
    chat.send(send);
    chat.send({ type: "typing.stop" });
    lastTyping = 0;
    chatForm.chatText.value = "";
  };
  chatForm.addEventListener("submit", sendChat);
  $(".chat-send", chatForm).addEventListener("click", sendChat);

  await Promise.allSettled([trip.connect(), chat.connect()]);
}

main().catch((error) => showError(error.message));
window.tripsage = { get trip() { return trip; }, get chat() { return chat; }, state };
