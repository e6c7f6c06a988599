/* Timeline: click or drag on an empty stretch of a row to open the booking form prefilled.
   Times are the member's (data-tz), snapped to half hours; a plain click books one hour.
   Without this script the row names still link to the form. */
(function () {
  "use strict";
  var HALF = 30 * 60 * 1000, HOUR = 2 * HALF, MINUTE = 60 * 1000;
  var root = document.querySelector(".tl[data-start]");
  if (!root || !window.Intl) return;
  var start = Number(root.dataset.start), end = Number(root.dataset.end), zone = root.dataset.tz, book = root.dataset.book;
  var parts;
  try {
    parts = new Intl.DateTimeFormat("en-GB", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  } catch (e) { return; }

  // The member's wall-clock time at an instant, counted as if it were UTC (so it can be snapped and printed).
  function wall(instant) {
    var p = {};
    parts.formatToParts(new Date(instant)).forEach(function (x) { p[x.type] = x.value; });
    return Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour % 24, +p.minute);
  }
  function offset(instant) { return wall(instant) - Math.floor(instant / MINUTE) * MINUTE; }
  function formTime(wallTime) { return new Date(wallTime).toISOString().slice(0, 16); }
  function clock(wallTime) { return formTime(wallTime).slice(11); }

  function instantAt(track, clientX) {
    var box = track.getBoundingClientRect();
    var f = Math.min(Math.max((clientX - box.left) / box.width, 0), 1);
    return start + f * (end - start);
  }
  // A span in wall time [from, to) for a press at a and a release at b (instants).
  function span(a, b, dragged) {
    var lo = Math.min(a, b), hi = Math.max(a, b);
    var from = Math.floor(wall(lo) / HALF) * HALF;
    var to = dragged ? Math.ceil(wall(hi) / HALF) * HALF : from + HOUR;
    if (to - from < HALF) to = from + HALF;
    // Over the past, it starts now (to the minute): a booking cannot start earlier.
    var earliest = Math.floor(wall(Date.now()) / MINUTE) * MINUTE;
    if (from < earliest) {
      from = earliest;
      if (to - from < HALF) to = from + HOUR;
    }
    return { from: from, to: to, off: offset(lo) };
  }
  function percent(instant) { return (instant - start) / (end - start) * 100; }

  var ghost = document.createElement("div"), ghostText = document.createElement("span");
  ghost.className = "tl-sel";
  ghost.setAttribute("aria-hidden", "true");
  ghost.appendChild(ghostText);
  function show(track, s) {
    if (ghost.parentNode !== track) track.appendChild(ghost);
    var left = Math.max(percent(s.from - s.off), 0), right = Math.min(percent(s.to - s.off), 100);
    ghost.style.left = left + "%";
    ghost.style.width = Math.max(right - left, 0) + "%";
    ghostText.textContent = clock(s.from) + "–" + clock(s.to);
  }
  function hide() { if (ghost.parentNode) ghost.parentNode.removeChild(ghost); }
  function go(row, s) {
    window.location.href = book + "?" + row.dataset.q + "&start=" + encodeURIComponent(formTime(s.from)) + "&end=" + encodeURIComponent(formTime(s.to));
  }
  function emptyTrack(target) {
    if (!target.closest || target.closest(".bar")) return null;
    var track = target.closest(".tl-row[data-q] > .tl-track");
    return track || null;
  }

  var drag = null;
  root.addEventListener("pointerdown", function (event) {
    if (event.pointerType !== "mouse" || event.button !== 0) return;
    var track = emptyTrack(event.target);
    if (!track) return;
    event.preventDefault();
    var at = instantAt(track, event.clientX);
    drag = { track: track, x: event.clientX, at: at };
    show(track, span(at, at, false));
  });
  document.addEventListener("pointermove", function (event) {
    if (event.pointerType !== "mouse") return;
    if (drag) {
      var moved = Math.abs(event.clientX - drag.x) > 4;
      show(drag.track, span(drag.at, instantAt(drag.track, event.clientX), moved));
      return;
    }
    var track = emptyTrack(event.target);
    if (track) { var at = instantAt(track, event.clientX); show(track, span(at, at, false)); } else hide();
  });
  document.addEventListener("pointerup", function (event) {
    if (!drag || event.pointerType !== "mouse") return;
    var moved = Math.abs(event.clientX - drag.x) > 4;
    var s = span(drag.at, instantAt(drag.track, event.clientX), moved);
    var row = drag.track.parentNode;
    drag = null;
    go(row, s);
  });
  root.addEventListener("mouseleave", function () { if (!drag) hide(); });
  // Touch and pen: a tap (not a scroll) books the hour from the tapped half hour.
  root.addEventListener("click", function (event) {
    if (event.pointerType === "mouse" || (event.detail === 0)) return;
    var track = emptyTrack(event.target);
    if (!track) return;
    var at = instantAt(track, event.clientX);
    go(track.parentNode, span(at, at, false));
  });
})();

/* On a narrow screen the time area scrolls sideways: open it at "now" rather than at midnight. */
(function () {
  "use strict";
  var scroller = document.querySelector(".tl-scroll"), now = document.querySelector(".tl-now");
  if (!scroller || !now || scroller.scrollWidth <= scroller.clientWidth) return;
  var label = document.querySelector(".tl-label");
  var labelWidth = label ? label.getBoundingClientRect().width : 0;
  var target = now.getBoundingClientRect().left - scroller.getBoundingClientRect().left - labelWidth - 40;
  scroller.scrollLeft = Math.max(0, target);
})();
