{% load static %}// The trip page's service worker (served at /trips/sw.js: its scope, /trips/, covers
// /trips/<id>/edit). Network first for the trip page and the static files under
// {% get_static_prefix %}tripsage/, each answer kept; without network, the kept copy. Nothing
// else is touched: API answers, tokens, sign-in and sockets go to the network and are never kept.
// docs/client.md, "The trip page offline".
const CACHE = "tripsage-pages-v1"; // nav.js deletes it on sign-out
const STATIC = "{% get_static_prefix %}tripsage/";
const TRIP_PAGE = /^\/trips\/\d+\/edit$/;

function keepable(url) {
  return url.origin === self.location.origin && (TRIP_PAGE.test(url.pathname) || url.pathname.startsWith(STATIC));
}

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET" || !keepable(new URL(request.url))) return;
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      try {
        const response = await fetch(request);
        // Only whole, same-origin answers (no redirect, no 403 of a non-member's page).
        if (response.status === 200 && response.type === "basic") event.waitUntil(cache.put(request, response.clone()));
        return response;
      } catch (error) {
        const kept = await cache.match(request, { ignoreSearch: TRIP_PAGE.test(new URL(request.url).pathname) });
        if (kept) return kept;
        throw error;
      }
    })(),
  );
});

// The page asks, once the worker is in control, to keep what it loaded before that (itself, its
// styles and scripts): the first load is not the worker's to see. Answers on the given port.
self.addEventListener("message", (event) => {
  if (event.data?.type !== "tripsage.keep") return;
  const urls = (event.data.urls || []).map((url) => new URL(url, self.location.origin)).filter(keepable);
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      await Promise.allSettled(
        urls.map(async (url) => {
          const response = await fetch(url, { credentials: "same-origin" });
          if (response.status === 200 && response.type === "basic") await cache.put(url.href, response);
        }),
      );
      event.ports[0]?.postMessage("kept");
    })(),
  );
});
