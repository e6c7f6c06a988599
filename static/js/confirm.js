/* Forms with data-confirm ask first (window.confirm, as htmx's hx-confirm does on the pages that use htmx). */
document.addEventListener("submit", function (event) {
  "use strict";
  const question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});
