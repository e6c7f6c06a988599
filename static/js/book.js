// The booking form: show only the inputs that apply to the choice, keep the three ways of giving
// a length apart, and let "use it" fill the start in place. Without this script every input
// shows and the form still works (the server reads the what-choice and ignores nothing silently).
(function () {
  "use strict";
  const form = document.querySelector("form.book");
  if (!form) return;
  const server = form.elements.namedItem("server");
  const duration = form.elements.namedItem("duration");
  const end = form.elements.namedItem("end");
  const start = form.elements.namedItem("start");

  // Hidden inputs are disabled too, so they are neither posted nor checked.
  function show(element, on) {
    element.hidden = !on;
    element.querySelectorAll("input, select").forEach(function (input) { input.disabled = !on; });
  }

  function sync() {
    const picked = form.querySelector("input[name=what]:checked");
    const what = picked ? picked.value : "gpus";
    form.querySelectorAll("[data-show]").forEach(function (element) {
      show(element, element.dataset.show.split(" ").indexOf(what) >= 0);
    });
    if (what === "gpus" && server) {
      form.querySelectorAll(".gpu-group").forEach(function (group) { show(group, group.dataset.server === server.value); });
    }
    // CPU cores and memory: only for a server that shares them (with GPUs), with that server's capacity.
    const shares = form.querySelector(".shares[data-pooled]");
    if (shares && server && !shares.hidden) {
      const pooled = shares.dataset.pooled.split(" ").indexOf(server.value) >= 0;
      if (what === "gpus" && !pooled) show(shares, false);
      shares.querySelectorAll(".pool[data-server]").forEach(function (note) { note.hidden = note.dataset.server !== server.value; });
      const none = shares.querySelector(".pool-none");
      if (none) none.hidden = pooled;
    }
  }

  form.addEventListener("input", function (event) {
    const input = event.target;
    if (input.name === "what" || input.name === "server") sync();
    if (input.name === "length") { duration.value = ""; end.value = ""; }
    if (input.name === "duration" && input.value) { form.querySelectorAll("input[name=length]").forEach(function (c) { c.checked = false; }); end.value = ""; }
    if (input.name === "end" && input.value) { form.querySelectorAll("input[name=length]").forEach(function (c) { c.checked = false; }); duration.value = ""; }
  });

  form.addEventListener("click", function (event) {
    const link = event.target.closest("a.use-it");
    if (!link) return;
    event.preventDefault();
    start.value = link.dataset.start;
    if (end.value) end.value = link.dataset.end;
    start.dispatchEvent(new Event("input", { bubbles: true }));
    start.focus();
  });

  sync();
})();

/* Free or held in the chosen window, on the GPU tick boxes: the availability box carries the states
   (a <template id="gpu-states">, one span per held GPU) and says the same in a sentence for screen
   readers and pages without this script. */
(function () {
  "use strict";
  const form = document.querySelector("form.book");
  if (!form) return;
  function mark() {
    const box = document.querySelector(".gpu-states[data-server]");
    const states = document.getElementById("gpu-states");
    const held = {};
    if (states) states.content.querySelectorAll("[data-gpu]").forEach(function (span) { held[span.dataset.gpu] = span.textContent; });
    form.querySelectorAll(".gpu-group").forEach(function (group) {
      const known = box && group.dataset.server === box.dataset.server;
      group.querySelectorAll("label.gpu").forEach(function (label) {
        const input = label.querySelector("input[name=gpus]");
        let tag = label.querySelector(".state");
        if (!known) { label.removeAttribute("data-state"); if (tag) tag.remove(); return; }
        const text = held[input.value];
        if (!tag) { tag = document.createElement("span"); tag.className = "state"; label.appendChild(tag); }
        label.dataset.state = text ? "busy" : "free";
        tag.textContent = text ? "busy" : "free";
        label.title = (label.dataset.model ? label.dataset.model + " — " : "") + (text ? "held by " + text : "free then");
      });
    });
  }
  document.body.addEventListener("htmx:afterSwap", function (event) { if (event.target.id === "book-check") mark(); });
  mark();
})();
