/* The usage page's two bar charts (Chart.js): booked against used GPU-hours per server and per member.
   Data from the page's <script type="application/json" id="usage-data">; the tables beside the
   charts hold the same figures, so without this script nothing is lost. */
(function () {
  "use strict";
  var source = document.getElementById("usage-data");
  if (!source || !window.Chart) return;
  var data;
  try { data = JSON.parse(source.textContent); } catch (e) { return; }

  var BOOKED = "#9db7df", USED = "#1d5fbf", UNBOOKED = "#b5651d";
  var hours = new Intl.NumberFormat("en-GB", { maximumFractionDigits: 1 });

  function draw(canvas, series) {
    if (!canvas || !series || !series.labels.length) return;
    var old = window.Chart.getChart(canvas);
    if (old) old.destroy();
    // Booked lighter, booked and used darker, unbooked use (servers only) apart in another hue: it is no part of
    // what was booked. The legend and the tooltip name each, the tables give the figures.
    var datasets = [
      { label: "Booked GPU-hours", data: series.booked, backgroundColor: BOOKED, borderColor: "#5b82c0", borderWidth: 1, maxBarThickness: 48 },
      { label: "Booked and used GPU-hours", data: series.used, backgroundColor: USED, borderColor: USED, borderWidth: 1, maxBarThickness: 48 }
    ];
    if (series.unbooked) {
      datasets.push({ label: "Unbooked use, GPU-hours", data: series.unbooked, backgroundColor: UNBOOKED, borderColor: UNBOOKED, borderWidth: 1, maxBarThickness: 48 });
    }
    new window.Chart(canvas, {
      type: "bar",
      data: { labels: series.labels, datasets: datasets },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { ticks: { autoSkip: true, maxRotation: 60, autoSkipPadding: 4 }, grid: { display: false } },
          y: { beginAtZero: true, title: { display: true, text: "GPU-hours" }, grid: { color: "#eef1f4" } }
        },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 14 } },
          tooltip: {
            callbacks: {
              label: function (item) { return item.dataset.label + ": " + hours.format(item.parsed.y); },
              footer: function (items) {
                var booked = items[0] && series.booked[items[0].dataIndex], used = items[0] && series.used[items[0].dataIndex];
                return booked ? "Used " + Math.round(100 * used / booked) + "% of booked" : "";
              }
            }
          }
        }
      }
    });
  }

  draw(document.getElementById("chart-servers"), data.servers);
  draw(document.getElementById("chart-members"), data.members);
})();
