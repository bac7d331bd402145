// Signing out or switching user forgets the trip page's tokens too (kept in sessionStorage), so
// the next user's page never starts with the last one's; and what was kept for offline use
// (the service worker's copies of the trip pages, the last snapshots of trips) goes with them.
// Unsent edits stay, under their user's id: they are sent when that user is back.
const PAGE_CACHE = "tripsage-pages-v1"; // the service worker's (collaboration/templates/collaboration/sw.js)
const SNAPSHOTS = "tripsage.trip.v1."; // trip-edit.js

function forgetSnapshots() {
  try {
    const keys = [];
    for (let i = 0; i < localStorage.length; i++) keys.push(localStorage.key(i));
    for (const key of keys) if (key?.startsWith(SNAPSHOTS)) localStorage.removeItem(key);
  } catch {
    /* storage refused: nothing was kept */
  }
}

for (const form of document.querySelectorAll(".signout-form")) {
  form.addEventListener("submit", (event) => {
    sessionStorage.removeItem("tripsage.access");
    sessionStorage.removeItem("tripsage.refresh");
    forgetSnapshots();
    if (!globalThis.caches) return;
    // Deleting the cache is asynchronous: sign out once it is done (or after a second at most).
    event.preventDefault();
    const timeout = new Promise((resolve) => setTimeout(resolve, 1000));
    Promise.race([caches.delete(PAGE_CACHE), timeout])
      .catch(() => undefined)
      .then(() => form.submit());
  });
}
