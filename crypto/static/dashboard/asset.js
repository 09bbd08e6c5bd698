// The asset page's charts: one line per source on the same axes (disagreements show), the
// min-max band of each bucket when the interval is hourly or daily; plotly gives zoom and hover.
(function () {
  "use strict";
  function draw() {
    var holder = document.getElementById("price-chart");
    var data = JSON.parse(document.getElementById("chart-data").textContent);
    if (!holder || !window.Plotly) { return; }
    var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
    var bucketed = holder.dataset.interval !== "raw";
    var colors = { coingecko: "#3b82f6", csv: "#f59e0b" };
    var price = [], cap = [];
    Object.keys(data.series).forEach(function (source) {
      var s = data.series[source];
      var color = colors[source] || "#10b981";
      if (bucketed) {
        price.push({ x: s.time, y: s.low, name: source + " min", mode: "lines", line: { width: 0 },
                     hoverinfo: "skip", showlegend: false, legendgroup: source });
        price.push({ x: s.time, y: s.high, name: source + " range", mode: "lines", line: { width: 0 },
                     fill: "tonexty", fillcolor: color + "33", hoverinfo: "skip", showlegend: false,
                     legendgroup: source });
      }
      var mode = s.time.length < 60 ? "lines+markers" : "lines";  // a lone point stays visible
      price.push({ x: s.time, y: s.price, name: source, mode: mode, line: { color: color },
                   legendgroup: source, hovertemplate: "%{y:$,.6~g}<extra>" + source + "</extra>" });
      cap.push({ x: s.time, y: s.cap, name: source, mode: mode, line: { color: color },
                 hovertemplate: "%{y:$.3~s}<extra>" + source + "</extra>" });
    });
    var layout = {
      margin: { l: 60, r: 10, t: 10, b: 30 }, hovermode: "x unified",
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: { color: dark ? "#e5e7eb" : "#1f2937" },
      xaxis: { type: "date", gridcolor: dark ? "#374151" : "#e5e7eb" },
      yaxis: { tickprefix: "$", gridcolor: dark ? "#374151" : "#e5e7eb" },
      legend: { orientation: "h" }
    };
    var config = { responsive: true, displaylogo: false };
    window.Plotly.newPlot(holder, price, layout, config);
    var capHolder = document.getElementById("cap-chart");
    var capLayout = JSON.parse(JSON.stringify(layout));
    capLayout.yaxis.tickformat = "$.2~s";
    capLayout.yaxis.tickprefix = "";
    window.Plotly.newPlot(capHolder, cap, capLayout, config);
    holder.dataset.drawn = String(price.filter(function (t) { return t.legendgroup && t.name === t.legendgroup; })
      .reduce(function (n, t) { return n + t.x.length; }, 0));
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); } else { draw(); }
})();
