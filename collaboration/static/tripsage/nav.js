// Signing out or switching user forgets the trip page's tokens too (kept in sessionStorage), so
// the next user's page never starts with the last one's.
for (const form of document.querySelectorAll(".signout-form")) {
  form.addEventListener("submit", () => {
    sessionStorage.removeItem("tripsage.access");
    sessionStorage.removeItem("tripsage.refresh");
  });
}
