/* rnn-cell-bench dashboard: sortable, filterable tables and the charts' embedding.
 * No framework, nothing fetched: tables are the page's own HTML, charts come as JSON in
 * <script type="application/json"> elements and are drawn by vega-embed (assets/vega-embed.js). */
(function () {
  "use strict";

  /* --- tables: click a column head to sort; a .filters form filters rows --- */

  function sortKey(cell) {
    const raw = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
    const n = Number(raw);
    return raw !== "" && !Number.isNaN(n) ? [0, n] : [1, raw.toLowerCase()];
  }

  function compareKeys(a, b) {
    if (a[0] !== b[0]) return a[0] - b[0];
    return a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0;
  }

  function makeSortable(table) {
    const heads = Array.from(table.tHead.rows[0].cells);
    heads.forEach(function (th, index) {
      if (th.classList.contains("nosort")) return;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "sort";
      while (th.firstChild) button.appendChild(th.firstChild);
      th.appendChild(button);
      button.addEventListener("click", function () {
        const ascending = th.getAttribute("aria-sort") !== "ascending";
        heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        const body = table.tBodies[0];
        const rows = Array.from(body.rows);
        rows.sort(function (r1, r2) {
          const c = compareKeys(sortKey(r1.cells[index]), sortKey(r2.cells[index]));
          return ascending ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }

  function applyFilters(form) {
    const table = document.getElementById(form.dataset.table);
    const selects = Array.from(form.querySelectorAll("select[name]"));
    const query = form.querySelector("input[name=q]");
    const showStale = form.querySelector("input[name=stale]");
    const words = query ? query.value.trim().toLowerCase().split(/\s+/).filter(Boolean) : [];
    let shown = 0;
    const rows = Array.from(table.tBodies[0].rows);
    rows.forEach(function (row) {
      const text = row.textContent.toLowerCase();
      const visible =
        selects.every(function (s) { return s.value === "" || row.dataset[s.name] === s.value; }) &&
        words.every(function (w) { return text.indexOf(w) >= 0; }) &&
        (!("stale" in row.dataset) || (showStale && showStale.checked));
      row.hidden = !visible;
      shown += visible ? 1 : 0;
    });
    const count = form.querySelector(".count");
    if (count) count.textContent = shown + " of " + rows.length + " shown";
  }

  /* --- charts: vega-embed of spec "initial", a .log-toggle switches to spec "log" and back --- */

  const EMBED_OPTIONS = {
    renderer: "svg",
    mode: "vega-lite",
    actions: { export: true, source: false, compiled: false, editor: false },
  };

  function drawChart(figure, name) {
    const chart = JSON.parse(document.getElementById(figure.dataset.chart).textContent);
    figure.dataset.rendered = "";
    // the specs name their data; Vega-Lite's top-level "datasets" supplies it by those names
    const spec = Object.assign({}, chart.specs[name], { datasets: chart.data });
    return window.vegaEmbed(figure.querySelector(".vega"), spec, EMBED_OPTIONS)
      .then(function () { figure.dataset.rendered = name; })
      .catch(function (error) {
        figure.dataset.rendered = "error";
        figure.querySelector(".vega").textContent = "The chart could not be drawn: " + error;
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table.sortable").forEach(makeSortable);
    document.querySelectorAll("form.filters").forEach(function (form) {
      form.addEventListener("input", function () { applyFilters(form); });
      form.addEventListener("change", function () { applyFilters(form); });
      form.addEventListener("submit", function (e) { e.preventDefault(); });
      applyFilters(form);
    });
    document.querySelectorAll("figure.chart").forEach(function (figure) {
      const chart = JSON.parse(document.getElementById(figure.dataset.chart).textContent);
      drawChart(figure, chart.initial);
      const toggle = figure.querySelector("input.log-toggle");
      if (toggle) {
        toggle.addEventListener("change", function () {
          drawChart(figure, toggle.checked ? "log" : "linear");
        });
      }
    });
  });
})();
