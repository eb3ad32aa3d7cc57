// Recoup's back office: draws the charts whose data a page put in
// <script type="application/json" id="…"> next to <canvas data-chart="…">. Without this file
// (or without Chart.js) the tables under the charts still hold every figure.
(function () {
  "use strict";
  var palette = ["#1f5f8b", "#e07b39", "#2f8f5b", "#8a5a00", "#6b4fa0"];

  function number(value) {
    return value === null || value === undefined ? null : parseFloat(value);
  }

  // "2026-11-23" → "23 Nov" (the table beside the chart keeps the full date)
  function weekLabel(iso) {
    var parts = iso.split("-");
    var months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    return parseInt(parts[2], 10) + " " + months[parseInt(parts[1], 10) - 1];
  }

  function draw(canvas) {
    var source = document.getElementById(canvas.dataset.chart);
    if (!source || typeof Chart === "undefined") return;
    var spec = JSON.parse(source.textContent);
    var config;
    if (spec.type === "weeks") {
      config = {
        data: {
          labels: spec.labels.map(weekLabel),
          datasets: [
            { type: "bar", label: spec.series[0].label, data: spec.series[0].data.map(number),
              backgroundColor: palette[0], yAxisID: "y" },
            { type: "line", label: spec.series[1].label, data: spec.series[1].data.map(number),
              borderColor: palette[1], backgroundColor: palette[1], spanGaps: true, yAxisID: "rate",
              pointRadius: 4, clip: 8 }
          ]
        },
        options: {
          maintainAspectRatio: false, animation: false,
          scales: {
            y: { beginAtZero: true, title: { display: true, text: spec.currency } },
            rate: { position: "right", min: 0, max: 100, grid: { drawOnChartArea: false },
              title: { display: true, text: "%" } }
          }
        }
      };
    } else {
      config = {
        type: "bar",
        data: {
          labels: spec.labels,
          datasets: spec.series.map(function (s, i) {
            return { label: s.label, data: s.data.map(number), backgroundColor: palette[i] };
          })
        },
        options: {
          maintainAspectRatio: false, animation: false,
          plugins: { legend: { display: false } },
          scales: { y: { beginAtZero: true, title: { display: true, text: spec.currency } } }
        }
      };
    }
    new Chart(canvas, config);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("canvas[data-chart]").forEach(draw);
  });
})();
