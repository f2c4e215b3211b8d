// A card whose table is wider than the screen (a phone, a narrow window) scrolls sideways: mark
// it .scrolls-sideways, and the stylesheet shows a hint that stays in view while it scrolls.
// Only the cards that do scroll are marked, checked again after a resize, an htmx swap and a
// <details> opened or closed.
// Loaded with <script src>, never inline, so the pages can run under a strict CSP.
(function () {
  "use strict";

  function mark() {
    document.querySelectorAll(".card").forEach(function (card) {
      card.classList.toggle("scrolls-sideways", card.scrollWidth > card.clientWidth + 1);
    });
  }

  document.addEventListener("DOMContentLoaded", mark);
  window.addEventListener("load", mark); // once fonts and images have their size
  window.addEventListener("resize", mark);
  document.addEventListener("htmx:afterSettle", mark);
  document.addEventListener("toggle", mark, true); // a <details> opened or closed (toggle does not bubble)
})();
