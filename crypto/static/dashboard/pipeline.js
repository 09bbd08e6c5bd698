// The runs timeline: one marker per run (x: start, y: duration, size: items), coloured by
// status; runs with anomaly findings are ringed, their findings in the hover text.
(function () {
  "use strict";
  function draw() {
    var holder = document.getElementById("runs-chart");
    var runs = JSON.parse(document.getElementById("timeline-data").textContent);
    if (!holder || !window.Plotly) { return; }
    var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
    var colors = { success: "#047857", partial: "#b45309", failed: "#b91c1c", running: "#1d4ed8", skipped: "#6b7280" };
    var traces = Object.keys(colors).map(function (status) {
      var mine = runs.filter(function (r) { return r.status === status; });
      return {
        name: status, type: "scatter", mode: "markers",
        x: mine.map(function (r) { return r.started_at; }),
        y: mine.map(function (r) { return r.seconds; }),
        text: mine.map(function (r) { return r.source + " · " + r.items + " items" + (r.findings.length ? "<br>" + r.findings.join("<br>") : ""); }),
        hovertemplate: "%{text}<br>%{y:.1f} s<extra>" + status + "</extra>",
        marker: {
          color: colors[status],
          size: mine.map(function (r) { return 6 + Math.min(14, Math.log10(1 + r.items) * 3); }),
          line: { width: mine.map(function (r) { return r.findings.length ? 3 : 0; }), color: "#f59e0b" }
        }
      };
    }).filter(function (t) { return t.x.length; });
    window.Plotly.newPlot(holder, traces, {
      margin: { l: 50, r: 10, t: 10, b: 30 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: { color: dark ? "#e5e7eb" : "#1f2937" },
      xaxis: { type: "date", gridcolor: dark ? "#374151" : "#e5e7eb" },
      yaxis: { title: { text: "seconds" }, gridcolor: dark ? "#374151" : "#e5e7eb" },
      legend: { orientation: "h" }
    }, { responsive: true, displaylogo: false });
    holder.dataset.drawn = String(runs.length);
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); } else { draw(); }
})();
