// My trips: create a trip and invite people through the REST API (the session signs the
// requests, with Django's CSRF token), and show who is online on each trip from
// /api/trips/online/, asked again every few seconds.

const ONLINE_POLL_MS = 5000;
const csrf = document.querySelector('[name="csrfmiddlewaretoken"]')?.value ?? "";
const pageError = document.querySelector(".page-error");

function describe(data, status) {
  const error = data?.error;
  if (!error) return `The server answered ${status}.`;
  // A validation refusal names each field: {fields: {name: ["..."]}}.
  const details = error.details?.fields && typeof error.details.fields === "object" ? error.details.fields : {};
  const fields = Object.entries(details)
    .filter(([, value]) => Array.isArray(value))
    .map(([field, value]) => `${field.replaceAll("_", " ")}: ${value.join(" ")}`);
  return fields.length ? fields.join("; ") : error.message;
}

async function api(method, url, body) {
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(describe(data, response.status));
  return data;
}

document.getElementById("create-trip").addEventListener("submit", async (event) => {
  event.preventDefault();
  // elements.namedItem: form.name is the form's own name, and form.role its ARIA role.
  const input = (field) => event.currentTarget.elements.namedItem(field);
  const body = { name: input("name").value.trim() };
  for (const field of ["destination", "start_date", "end_date"]) {
    if (input(field).value) body[field] = input(field).value;
  }
  pageError.textContent = "";
  try {
    await api("POST", "/api/trips/", body);
    location.reload(); // the list is drawn by the server, with the new trip on top
  } catch (error) {
    pageError.textContent = `Could not create the trip. ${error.message}`;
  }
});

for (const form of document.querySelectorAll(".invite-form")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = form.querySelector(".invite-result");
    const username = form.elements.namedItem("username").value.trim();
    const role = form.elements.namedItem("role").value;
    result.classList.remove("failed");
    result.textContent = "Inviting...";
    try {
      const member = await api("POST", `/api/trips/${form.dataset.tripId}/members/`, { username, role });
      result.textContent = `${member.user.username} is now ${member.role}.`;
      const members = form.closest(".trip-card").querySelector(".members");
      const known = members.querySelector(`[data-username="${CSS.escape(member.user.username)}"]`);
      const label = `${member.user.username} (${member.role})`;
      if (known) known.textContent = label;
      else {
        const span = document.createElement("span");
        span.className = "member";
        span.dataset.username = member.user.username;
        span.textContent = label;
        members.append(", ", span);
      }
      form.elements.namedItem("username").value = "";
    } catch (error) {
      result.classList.add("failed");
      result.textContent = `Could not invite ${username}. ${error.message}`;
    }
  });
}

async function refreshOnline() {
  if (!document.querySelector(".trip-card")) return;
  try {
    const { trips } = await api("GET", "/api/trips/online/");
    for (const entry of trips) {
      const line = document.querySelector(`.trip-card[data-trip-id="${entry.trip_id}"] .online`);
      if (!line) continue;
      const names = entry.collaborators.map((c) => c.user.username);
      const text = names.length
        ? `Online now (${entry.collaborator_count}): ${names.join(", ")}${entry.collaborators_truncated ? ", ..." : ""}`
        : "Online now: nobody";
      if (line.textContent !== text) line.textContent = text; // unchanged text is not announced again
    }
  } catch (error) {
    pageError.textContent = `Could not tell who is online. ${error.message}`;
  }
}

refreshOnline();
setInterval(() => {
  if (document.visibilityState === "visible") refreshOnline();
}, ONLINE_POLL_MS);
