/* The p95 page's plots and machine picker (tracker/kvtracker/html_page.py writes the page and
   window.P95_DATA). p95.html?machine=NAME opens with that machine picked. A plot is drawn
   with uPlot when it is in view or scrolls near it. The page's script tag names the data's URL
   (data-p95-data: data.js?v=its content's hash). When uPlot or the data cannot be loaded, or
   the plots cannot be drawn, one line at the top of the page says so. Per series:
   x = indexes into P95_DATA.commits (oldest first), p95/median/low/high in the series' display
   unit (unit: "ms", "µs", "probes", ...; statistic: what "p95" holds), null = gap;
   ref = [point index, level]: the alert rule's reference level from that point on;
   marks = [point index, "change" | "regression" | "budget" | "tentative" | "dismissed"]. */
(function () {
  "use strict";
  var ASSETS = document.currentScript.src.replace(/[^/]*$/, "");  // this file's directory
  var DATA = document.currentScript.getAttribute("data-p95-data");  // p95/data.js?v=HASH
  var NEAR = 400;  // px: a plot this near the view is drawn
  var data;  // window.P95_DATA, once data.js is loaded
  var MARK = {
    change: ["#555", [2, 3]], regression: ["#b00", []], budget: ["#c60", []],
    tentative: ["#a80", [6, 3]], dismissed: ["#aaa", [6, 3]]
  };

  function day(ms) { return new Date(ms).toISOString().slice(0, 10); }

  function pickMachine(machine) {
    document.querySelectorAll("[data-machine]").forEach(function (el) {
      el.hidden = machine !== "" && el.getAttribute("data-machine") !== machine;
    });
  }

  function drawMarks(s) {
    return function (u) {
      var ctx = u.ctx, top = u.bbox.top, height = u.bbox.height;
      ctx.save();
      ctx.lineWidth = 1.5 * devicePixelRatio;
      s.marks.forEach(function (mark) {
        var style = MARK[mark[1]], x = u.valToPos(mark[0], "x", true);
        ctx.strokeStyle = style[0];
        ctx.setLineDash(style[1].map(function (d) { return d * devicePixelRatio; }));
        ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
      });
      ctx.restore();
    };
  }

  function plot(el) {
    var s = data.series[+el.getAttribute("data-series")];
    var n = s.p95.length, xs = [], ref = [], upper = [], budget = [], next = 0, level = null;
    for (var i = 0; i < n; i++) {
      if (next < s.ref.length && s.ref[next][0] === i) level = s.ref[next++][1];
      xs.push(i);
      ref.push(level);
      upper.push(level === null ? null : level * (1 + s.threshold));
      budget.push(s.budget);
    }
    var commit = function (i) { return data.commits[s.x[i]]; };
    var finite = s.p95.filter(function (v) { return v > 0; });
    var log = finite.length && Math.max.apply(null, finite) / Math.min.apply(null, finite) > 20;
    var series = [
      { label: "commit", value: function (u, i) { return i == null ? "" : commit(i).slice(0, 8) + " " + day(data.dates[s.x[i]]); } },
      { label: s.statistic, stroke: "#1f77b4", width: 1.5, points: { size: 4 } },
      { label: "median", stroke: "#888", width: 1, points: { show: false } },
      { label: "CI low", stroke: "rgba(31,119,180,0.2)", width: 0, points: { show: false } },
      { label: "CI high", stroke: "rgba(31,119,180,0.2)", width: 0, points: { show: false } },
      { label: "reference", stroke: "#777", dash: [4, 4], width: 1, paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } },
      { label: "threshold", stroke: "#a80", width: 1, paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } }
    ];
    var arrays = [xs, s.p95, s.median, s.low, s.high, ref, upper];
    if (s.budget) {
      series.push({ label: "budget", stroke: "#b00", dash: [8, 4], width: 1.5, points: { show: false } });
      arrays.push(budget);
    }
    var opts = {
      width: el.clientWidth || 900, height: 280,
      scales: { x: { time: false }, y: log ? { distr: 3 } : {} },
      axes: [
        { space: 90, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000],
          values: function (u, splits) { return splits.map(function (i) { return Number.isInteger(i) && i >= 0 && i < n ? day(data.dates[s.x[i]]) : ""; }); } },
        { label: s.unit, size: 60 }
      ],
      series: series,
      bands: [{ series: [4, 3], fill: "rgba(31,119,180,0.15)" }, { series: [6, 5], fill: "rgba(200,150,0,0.12)" }],
      hooks: { draw: [drawMarks(s)] }
    };
    var chart = new uPlot(opts, arrays, el);
    if (data.commitUrl) {
      chart.over.style.cursor = "pointer";
      chart.over.title = "click: open the commit";
      chart.over.addEventListener("click", function () {
        var i = chart.cursor.idx;
        if (i != null) window.open(data.commitUrl + commit(i), "_blank", "noopener");
      });
    }
  }

  var picker = document.getElementById("machine");  // absent with one machine
  if (picker) {
    var wanted = new URLSearchParams(location.search).get("machine");  // p95.html?machine=NAME
    if (Array.prototype.some.call(picker.options, function (o) { return o.value === wanted; })) picker.value = wanted;
    picker.addEventListener("change", function () {
      pickMachine(picker.value);
      history.replaceState(null, "", picker.value ? "?machine=" + encodeURIComponent(picker.value) : location.pathname);
    });
    pickMachine(picker.value);
  }

  function startPlots() {
    data = window.P95_DATA;
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (entry.isIntersecting) { observer.unobserve(entry.target); plot(entry.target); }
      });
    }, { rootMargin: NEAR + "px" });
    document.querySelectorAll(".chart").forEach(function (el) {
      var shown = el.offsetParent !== null, top = el.getBoundingClientRect().top;
      if (shown && top < innerHeight + NEAR) plot(el); else observer.observe(el);  // in view: at once
    });
  }

  function load(src) {
    return new Promise(function (resolve, reject) {
      var script = document.createElement("script");
      script.src = src;
      script.onload = resolve;
      script.onerror = function () { reject(new Error("cannot load " + src)); };
      document.head.appendChild(script);
    });
  }

  // The plots' library and data load after the first frame (the table paints first); the
  // timeout stands in where no frame is drawn (a headless --dump-dom).
  var started = false;
  function start() {
    if (started) return;
    started = true;
    Promise.all([load(ASSETS + "uPlot.iife.min.js"), load(DATA)]).then(startPlots).catch(fail);
  }

  function fail(error) {
    console.error("p95 plots:", error);
    var note = document.createElement("p");
    note.className = "load-error";
    note.setAttribute("role", "alert");
    note.textContent = "The plots could not be drawn (" + error.message + "): reload the page; " +
      "the tables and commit lists below are complete without them.";
    document.body.insertBefore(note, document.body.firstChild);
  }
  requestAnimationFrame(function () { setTimeout(start, 0); });
  setTimeout(start, 200);
})();
