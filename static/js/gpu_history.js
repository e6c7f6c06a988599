/* A GPU's history as two Chart.js line charts: utilization and memory (%), temperature and power.
   Data from history.json (data-url); times on a linear axis of epoch milliseconds, labelled in the
   member's time zone (data-zone), since the vendored Chart.js has no date adapter. Booked time is
   shaded. Without this script the page's summary table and booking list still say it all. */
(function () {
  "use strict";
  var MINUTE = 60 * 1000, HOUR = 60 * MINUTE, DAY = 24 * HOUR;
  // Tick spacing per period, and how a tick is written.
  var TICKS = {
    hour: { step: 10 * MINUTE, format: { hour: "2-digit", minute: "2-digit", hourCycle: "h23" } },
    day: { step: 3 * HOUR, format: { weekday: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" } },
    week: { step: DAY, format: { weekday: "short", day: "numeric", month: "short" } },
    month: { step: 5 * DAY, format: { day: "numeric", month: "short" } }
  };
  var root = document.getElementById("gpu-history");
  var status = document.getElementById("chart-status");
  if (!root || !window.Chart || !window.fetch) return;
  var zone = root.dataset.zone, ticks = TICKS[root.dataset.period] || TICKS.day;
  var tickFormat, fullFormat, wallParts;
  try {
    tickFormat = new Intl.DateTimeFormat("en-GB", Object.assign({ timeZone: zone }, ticks.format));
    fullFormat = new Intl.DateTimeFormat("en-GB", { timeZone: zone, weekday: "short", day: "2-digit", month: "short", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
    wallParts = new Intl.DateTimeFormat("en-GB", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  } catch (e) {
    zone = undefined;  // an unknown zone name: fall back to the browser's
    tickFormat = new Intl.DateTimeFormat("en-GB", ticks.format);
    fullFormat = new Intl.DateTimeFormat("en-GB");
    wallParts = new Intl.DateTimeFormat("en-GB", { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  }

  // How far the member's wall clock is ahead of UTC at an instant, so ticks fall on local round times.
  function offset(instant) {
    var p = {};
    wallParts.formatToParts(new Date(instant)).forEach(function (x) { p[x.type] = x.value; });
    return Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour % 24, +p.minute) - Math.floor(instant / MINUTE) * MINUTE;
  }
  // Ticks on round local times, as many as fit the axis's width (about one per LABEL_PX).
  var LABEL_PX = 90, MULTIPLES = [1, 2, 3, 4, 6, 8, 12, 24];
  function roundTicks(min, max, width) {
    var fit = Math.max(2, Math.floor(width / LABEL_PX)), step = ticks.step;
    for (var i = 0; i < MULTIPLES.length && (max - min) / step > fit; i++) step = ticks.step * MULTIPLES[i];
    var shift = offset(min), values = [];
    for (var t = Math.ceil((min + shift) / step) * step - shift; t <= max; t += step) values.push({ value: t });
    return values;
  }

  // Points as {x, y}; a missing stretch longer than a few steps becomes a gap, not a straight line.
  function series(points, step, value) {
    var out = [], previous = null;
    points.forEach(function (point) {
      var x = Date.parse(point.at);
      if (previous !== null && x - previous > 2.5 * step) out.push({ x: (x + previous) / 2, y: null });
      out.push({ x: x, y: value(point) });
      previous = x;
    });
    return out;
  }

  var bookedSpans = [];
  try { bookedSpans = JSON.parse(document.getElementById("booked-spans").textContent); } catch (e) { bookedSpans = []; }

  // Shades booked time behind the lines: what the booking says beside what the GPU did.
  var shadeBookings = {
    id: "shadeBookings",
    beforeDatasetsDraw: function (chart) {
      var area = chart.chartArea, x = chart.scales.x, ctx = chart.ctx;
      ctx.save();
      ctx.fillStyle = "rgba(29, 95, 191, 0.08)";
      bookedSpans.forEach(function (span) {
        var left = Math.max(x.getPixelForValue(Date.parse(span.start)), area.left);
        var right = Math.min(x.getPixelForValue(Date.parse(span.end)), area.right);
        if (right > left) ctx.fillRect(left, area.top, right - left, area.bottom - area.top);
      });
      ctx.restore();
    }
  };

  function line(label, data, colour, axis, dash) {
    return {
      label: label, data: data, yAxisID: axis, borderColor: colour, backgroundColor: colour,
      borderWidth: 1.5, borderDash: dash || [], pointRadius: 0, pointHitRadius: 6, spanGaps: false, tension: 0
    };
  }

  var AXIS_PX = 56;

  function options(start, end, axes, units) {
    var scales = {
      x: {
        type: "linear", min: start, max: end,
        afterBuildTicks: function (scale) { scale.ticks = roundTicks(scale.min, scale.max, scale.width); },
        ticks: { callback: function (value) { return tickFormat.format(new Date(value)); }, maxRotation: 0, autoSkipPadding: 12 },
        grid: { color: "#eef1f4" }
      }
    };
    // Every value axis is as wide as the others, and a chart without a right-hand one keeps its room
    // empty: the two charts' time axes then span the same pixels, one instant above the other.
    Object.keys(axes).forEach(function (id) { scales[id] = Object.assign({ afterFit: function (scale) { scale.width = AXIS_PX; } }, axes[id]); });
    var right = Object.keys(axes).some(function (id) { return axes[id].position === "right"; });
    return {
      animation: false, responsive: true, maintainAspectRatio: false, parsing: false, normalized: true,
      layout: { padding: { right: right ? 0 : AXIS_PX } },
      interaction: { mode: "nearest", axis: "x", intersect: false },
      scales: scales,
      plugins: {
        legend: { position: "bottom", labels: { boxWidth: 24, boxHeight: 2 } },
        tooltip: {
          callbacks: {
            title: function (items) { return items.length ? fullFormat.format(new Date(items[0].parsed.x)) : ""; },
            label: function (item) {
              var y = item.parsed.y;
              return item.dataset.label + ": " + (y === null ? "—" : (Math.round(y * 10) / 10) + " " + units[item.dataset.yAxisID]);
            }
          }
        }
      }
    };
  }

  function draw(data) {
    var start = Date.parse(data.start), end = Date.parse(data.end), step = data.step_seconds * 1000, points = data.points;
    var total = data.device.memory_total_mib;
    var useSets = [
      line("Utilization, average", series(points, step, function (p) { return p.gpu_util; }), "#1d5fbf", "y"),
      line("Utilization, peak", series(points, step, function (p) { return p.gpu_util_max; }), "#7ba3dc", "y", [5, 3])
    ];
    if (total) {
      useSets.push(line("Memory used, % of " + Math.round(total / 1024) + " GiB",
        series(points, step, function (p) { return p.memory_used_mib === null ? null : 100 * p.memory_used_mib / total; }), "#7a3ea1", "y", [2, 2]));
    }
    new window.Chart(document.getElementById("chart-use"), {
      type: "line",
      data: { datasets: useSets },
      options: options(start, end, { y: { min: 0, max: 100, title: { display: true, text: "%" } } }, { y: "%" }),
      plugins: [shadeBookings]
    });
    new window.Chart(document.getElementById("chart-heat"), {
      type: "line",
      data: {
        datasets: [
          line("Temperature" + (data.resolution === "raw" ? "" : ", peak"), series(points, step, function (p) { return p.temperature_c; }), "#a3281b", "y"),
          line("Power" + (data.resolution === "raw" ? "" : ", average"), series(points, step, function (p) { return p.power_w; }), "#8a4510", "power", [6, 3])
        ]
      },
      options: options(start, end, {
        y: { beginAtZero: true, suggestedMax: 90, title: { display: true, text: "°C" } },
        power: { position: "right", beginAtZero: true, title: { display: true, text: "W" }, grid: { drawOnChartArea: false } }
      }, { y: "°C", power: "W" }),
      plugins: [shadeBookings]
    });
    status.textContent = points.length
      ? points.length + " point" + (points.length === 1 ? "" : "s") + (zone ? "; times in " + zone : "") + "."
      : "No readings in this period.";
  }

  fetch(root.dataset.url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
    .then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) throw new Error(body.error && body.error.message || response.statusText);
        return body;
      });
    })
    .then(draw)
    .catch(function (error) { status.textContent = "Could not draw the chart: " + error.message + " The summary below still holds."; });
})();
