/* The usage page's two bar charts (Chart.js): booked against used GPU-hours per server and per member.
   Data from the page's <script type="application/json" id="usage-data">; the tables beside the
   charts hold the same figures, so without this script nothing is lost. */
(function () {
  "use strict";
  var source = document.getElementById("usage-data");
  if (!source || !window.Chart) return;
  var data;
  try { data = JSON.parse(source.textContent); } catch (e) { return; }

  var BOOKED = "#9db7df", USED = "#1d5fbf";
  var hours = new Intl.NumberFormat("en-GB", { maximumFractionDigits: 1 });

  function draw(canvas, series) {
    if (!canvas || !series || !series.labels.length) return;
    var old = window.Chart.getChart(canvas);
    if (old) old.destroy();
    new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: series.labels,
        datasets: [
          // Booked lighter, used darker; the legend and the tooltip name both, the tables give the figures.
          { label: "Booked GPU-hours", data: series.booked, backgroundColor: BOOKED, borderColor: "#5b82c0", borderWidth: 1, maxBarThickness: 48 },
          { label: "Used GPU-hours", data: series.used, backgroundColor: USED, borderColor: USED, borderWidth: 1, maxBarThickness: 48 }
        ]
      },
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
