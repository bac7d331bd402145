// The trip page's history panel: one field's changes from GET /api/trips/<id>/history/?field=
// (docs/protocol.md, "History"), newest first, who / when / how, before -> after, "Load more";
// "Restore" puts a past value back through an ordinary trip.update (the page's `restore`), so
// versions and conflicts apply as for any edit. Everything is rendered as text.

const PAGE_SIZE = 20;
const SOURCE_TEXT = { edit: "edit", merge: "merge", resolution: "conflict resolution" };

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A wire value as the panel shows it: "—" for unknown (null before) or empty. */
function shown(value) {
  return value === null || value === undefined || value === "" ? "—" : String(value);
}

/**
 * createHistoryPanel({tripId, panel, buttons, labelFor, currentValue, restore, fetchJSON})
 * - buttons: the fields' "History" buttons (data-history = the field).
 * - fetchJSON(url): the authenticated GET (throws an Error with the server's message).
 * - currentValue(field): the value in force (a restore of it is offered as "current").
 * - restore(field, value): send it as an edit.
 * Returns {open(field), close(), changed(field), setReadOnly(readOnly)}.
 */
export function createHistoryPanel({ tripId, panel, buttons, labelFor, currentValue, restore, fetchJSON }) {
  const list = panel.querySelector(".history-list");
  const status = panel.querySelector(".history-status");
  const more = panel.querySelector(".history-more");
  const title = panel.querySelector(".history-field");
  let field = null;
  let nextBefore = null;
  let oldest = null; // the oldest change loaded
  let loading = 0; // a token: an answer for an older request is dropped
  let readOnly = false;
  let refreshTimer = null;

  function setExpanded() {
    for (const button of buttons) button.setAttribute("aria-expanded", String(button.dataset.history === field));
  }

  /** Restoring is for editors, and not to the value already in force. */
  function enable(button) {
    button.disabled = readOnly || button.dataset.value === JSON.stringify(currentValue(field));
  }

  function restoreButton(value, label) {
    const button = el("button", "history-restore secondary", "Restore");
    button.type = "button";
    button.setAttribute("aria-label", label);
    button.dataset.value = JSON.stringify(value);
    enable(button);
    button.addEventListener("click", () => {
      restore(field, value);
      status.textContent = `Restoring ${labelFor(field)} to ${shown(value)}...`;
    });
    return button;
  }

  function entry(change) {
    const li = el("li", "history-entry");
    li.dataset.seq = String(change.seq);
    li.dataset.source = change.source;
    const meta = el("p", "history-meta");
    const time = el("time", "history-at", new Date(change.at).toLocaleString());
    time.dateTime = change.at;
    meta.append(
      el("span", "history-by", change.by ? change.by.username : "someone"),
      " · ",
      time,
      " · ",
      el("span", "history-source", SOURCE_TEXT[change.source] ?? change.source),
    );
    const values = el("p", "history-change");
    values.append(el("span", "history-before", shown(change.before)), el("span", "history-arrow", " → "), el("span", "history-after", shown(change.after)));
    li.append(meta, values, restoreButton(change.after, `Restore ${labelFor(field)} to ${shown(change.after)}`));
    return li;
  }

  /** Below the oldest change, once there is nothing older: the value before it, if known. */
  function original() {
    const li = el("li", "history-entry history-original");
    li.append(el("p", "history-meta", "Before these changes"), el("p", "history-change", shown(oldest.before)));
    li.append(restoreButton(oldest.before, `Restore ${labelFor(field)} to ${shown(oldest.before)}`));
    return li;
  }

  async function load(reset) {
    const token = ++loading;
    const params = new URLSearchParams({ field, limit: String(PAGE_SIZE) });
    if (!reset && nextBefore !== null) params.set("before", String(nextBefore));
    status.textContent = "Loading...";
    more.disabled = true;
    let page;
    try {
      page = await fetchJSON(`/api/trips/${tripId}/history/?${params}`);
    } catch (error) {
      if (token !== loading) return;
      status.textContent = navigator.onLine === false ? "History needs a connection: try again when online." : `Could not load the history: ${error.message}`;
      more.disabled = false;
      return;
    }
    if (token !== loading) return;
    if (reset) {
      list.replaceChildren();
      oldest = null;
    }
    list.querySelector(".history-original")?.remove();
    for (const change of page.changes) list.append(entry(change));
    if (page.changes.length) oldest = page.changes[page.changes.length - 1];
    nextBefore = page.next_before ?? null;
    more.hidden = !page.has_more;
    more.disabled = false;
    if (!page.has_more && oldest && oldest.before !== null) list.append(original());
    const count = list.querySelectorAll(".history-entry:not(.history-original)").length;
    status.textContent = count ? `${count} ${count === 1 ? "change" : "changes"} of ${labelFor(field)}${page.has_more ? " (more below)" : ""}` : `No changes of ${labelFor(field)} yet`;
  }

  function open(name) {
    field = name;
    nextBefore = null;
    title.textContent = labelFor(name);
    list.replaceChildren();
    panel.hidden = false;
    setExpanded();
    panel.scrollIntoView?.({ block: "nearest" });
    return load(true);
  }

  function close() {
    field = null;
    loading++;
    panel.hidden = true;
    setExpanded();
  }

  for (const button of buttons) {
    button.addEventListener("click", () => (field === button.dataset.history ? close() : open(button.dataset.history)));
  }
  panel.querySelector(".history-close").addEventListener("click", close);
  more.addEventListener("click", () => load(false));

  return {
    open,
    close,
    /** The field changed (a trip.updated): an open panel on it shows the new change. */
    changed(name) {
      if (name !== field || panel.hidden) return;
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(() => field === name && load(true), 250);
    },
    setReadOnly(value) {
      readOnly = value;
      for (const button of list.querySelectorAll(".history-restore")) enable(button);
    },
  };
}
