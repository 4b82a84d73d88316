"""The leaderboard page: one Jinja2 template (autoescaped), its stylesheet and its script.

Kept in a module rather than a data file so the page ships with any install of the package.
The page loads nothing from the network; a Content-Security-Policy with the hashes of the
inline style and script makes sure nothing else runs even if some text escaped escaping.
"""

from __future__ import annotations

STYLE = """
:root { --fg: #1d2327; --muted: #5f6b73; --line: #d9dee2; --head: #f3f5f7; --accent: #1f5fa8; --warn: #b35c00; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); margin: 0; }
header.top { background: #17324d; color: #fff; padding: 18px 28px; }
header.top h1 { margin: 0 0 4px; font-size: 22px; }
header.top p { margin: 0; color: #cfdbe6; }
nav.suites { padding: 8px 28px; border-bottom: 1px solid var(--line); background: var(--head); }
nav.suites a { margin-right: 16px; color: var(--accent); text-decoration: none; }
main { padding: 8px 28px 40px; max-width: 1400px; }
section.suite { margin-top: 24px; }
h2 { font-size: 20px; border-bottom: 2px solid var(--fg); padding-bottom: 4px; }
h3 { font-size: 16px; margin: 22px 0 6px; }
p.caption, p.note, figcaption, .muted { color: var(--muted); font-size: 13px; }
p.note { color: var(--warn); }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 4px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 10px; text-align: left; white-space: nowrap; }
th { background: var(--head); font-weight: 600; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #9aa6ae; font-size: 11px; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; color: var(--fg); }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; color: var(--fg); }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.rank { font-weight: 700; text-align: center; }
tbody tr:hover { background: #f7fafc; }
tr.unranked td, tr.unranked .ci { color: #9aa6ae; }
tr.unranked td.rank { font-weight: 400; cursor: help; }
.ci { color: var(--muted); font-size: 12px; }
.flag { color: var(--warn); cursor: help; margin-left: 4px; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 18px; align-items: start; }
figure { margin: 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); background: #fff; }
.examples { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 14px; }
.example { border: 1px solid var(--line); padding: 8px; border-radius: 4px; }
.example .row { display: flex; gap: 8px; }
.example .cell { text-align: center; font-size: 12px; color: var(--muted); }
.example img { width: 128px; height: 128px; image-rendering: pixelated; border: 1px solid var(--line); display: block; }
.colorbar { height: 10px; width: 200px; border: 1px solid var(--line); display: inline-block; vertical-align: middle;
  background: linear-gradient(to right, %(colormap)s); }
dl.env { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 4px 0; font-size: 13px; }
dl.env dt { color: var(--muted); }
dl.env dd { margin: 0; font-family: ui-monospace, monospace; word-break: break-all; }
.run { border-left: 3px solid var(--line); padding: 2px 12px; margin: 10px 0; }
table.provenance td { white-space: normal; font-size: 12px; }
ul.weights { font-size: 13px; margin: 4px 0 8px; padding-left: 20px; }
details { margin: 6px 0; }
summary { cursor: pointer; }
code { font-family: ui-monospace, monospace; font-size: 12px; }
footer { color: var(--muted); font-size: 12px; padding: 16px 28px; border-top: 1px solid var(--line); }
"""

SCRIPT = """
(function () {
  "use strict";
  function value(row, index, numeric) {
    var cell = row.cells[index];
    if (!cell) { return null; }
    var raw = cell.getAttribute("data-sort");
    if (raw === null || raw === "") { return null; }
    if (numeric) { var n = parseFloat(raw); return isNaN(n) ? null : n; }
    return raw.toLowerCase();
  }
  function sortTable(table, header, index) {
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    var headers = table.tHead.rows[0].cells;
    for (var h = 0; h < headers.length; h++) { headers[h].removeAttribute("aria-sort"); }
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var numeric = header.getAttribute("data-type") === "number";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.forEach(function (row, position) { row.setAttribute("data-position", position); });
    rows.sort(function (a, b) {
      var x = value(a, index, numeric), y = value(b, index, numeric);
      if (x === null && y === null) { return a.getAttribute("data-position") - b.getAttribute("data-position"); }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      var order = x < y ? -1 : (x > y ? 1 : 0);
      if (order === 0) { return a.getAttribute("data-position") - b.getAttribute("data-position"); }
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (header, index) {
      header.tabIndex = 0;
      header.addEventListener("click", function () { sortTable(table, header, index); });
      header.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortTable(table, header, index); }
      });
    });
  });
})();
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="referrer" content="no-referrer">
<meta name="generator" content="xaibench {{ version }}">
<title>{{ title }}</title>
<link rel="icon" href="data:,">
<style>{{ style }}</style>
</head>
<body>
<header class="top">
  <h1>{{ title }}</h1>
  <p>Robustness and faithfulness of post-hoc explanations · {{ suites | length }} suite{{ "s" if suites | length != 1 }}
     · built {{ built }} by xaibench {{ version }}</p>
</header>
{% if suites | length > 1 %}
<nav class="suites">{% for suite in suites %}<a href="#{{ suite.anchor }}">{{ suite.name }}</a>{% endfor %}</nav>
{% endif %}
<main>
{% for suite in suites %}
<section class="suite" id="{{ suite.anchor }}">
  <h2>Suite {{ suite.name }}</h2>
  {% if suite.description %}<p class="muted">{{ suite.description }}</p>{% endif %}
  <p class="muted">{{ suite.counts }}</p>
  {% for note in suite.notes %}<p class="note">⚠ {{ note }}</p>{% endfor %}

  {% for table in suite.tables %}
  <h3 id="{{ suite.anchor }}-{{ table.anchor }}">{{ table.title }}</h3>
  <p class="caption">{{ table.caption }}</p>
  {% for note in table.notes %}<p class="note">⚠ {{ note }}</p>{% endfor %}
  <div class="table-wrap">
  <table class="sortable leaderboard" data-table="{{ table.anchor }}">
    <thead><tr>
    {% for column in table.columns %}<th scope="col" data-key="{{ column.key }}" data-type="{{ 'number' if column.numeric else 'text' }}" title="{{ column.tooltip }}">{{ column.title }}</th>{% endfor %}
    </tr></thead>
    <tbody>
    {% for row in table.rows %}<tr{% if row.unranked %} class="unranked" title="{{ row.unranked }}"{% endif %}>
      {% for column in table.columns %}{% set cell = row[column.key] %}<td class="{{ 'rank' if column.key == 'rank' else ('num' if column.numeric else '') }}" data-sort="{{ '' if cell.sort is none else cell.sort }}"{% if cell.tooltip %} title="{{ cell.tooltip }}"{% endif %}>{{ cell.text }}{% if cell.detail %} <span class="ci">{{ cell.detail }}</span>{% endif %}{% if cell.flag %}<span class="flag" title="{{ cell.flag }}" aria-label="{{ cell.flag }}">⚠</span>{% endif %}</td>{% endfor %}
    </tr>
    {% endfor %}
    </tbody>
  </table>
  </div>
  {% endfor %}
  {% if not suite.tables %}<p class="muted">No rows to rank.</p>{% endif %}

  {% if suite.figures or suite.figure_notes %}
  <h3>Figures</h3>
  {% for note in suite.figure_notes %}<p class="note">⚠ {{ note }}</p>{% endfor %}
  <div class="figures">
  {% for figure in suite.figures %}
    <figure>
      <img src="{{ figure.path }}" alt="{{ figure.title }}">
      <figcaption>{{ figure.caption }}</figcaption>
    </figure>
  {% endfor %}
  </div>
  {% endif %}

  <h3>Examples</h3>
  {% if suite.examples %}
  <p class="caption">The original, the corrupted image and both explanations (Σ over channels of
    |attribution|, one colour scale per example: <span class="colorbar"></span> 0 → high).</p>
  <div class="examples">
  {% for example in suite.examples %}
    <div class="example">
      <div class="muted">{{ example.model }} · <b>{{ example.explainer }}</b> · image {{ example.image_id }} ·
        {{ example.attack }} {{ example.point }}{% for value in example["values"] %} · {{ value }}{% endfor %}</div>
      <div class="row">
        {% for image in example.images %}
        <div class="cell"><img src="{{ image.path }}" alt="{{ image.label }}" width="128" height="128">{{ image.label }}</div>
        {% endfor %}
      </div>
    </div>
  {% endfor %}
  </div>
  {% else %}
  <p class="muted">No examples were stored for this suite (the results have no examples table).</p>
  {% endif %}

  <h3>Provenance</h3>
  <div class="table-wrap">
  <table class="provenance">
    <thead><tr><th>results folder</th><th>run id</th><th>started</th><th>suite file</th><th>seed</th>
      <th>device</th><th>packages</th><th>git revision</th><th>rows</th></tr></thead>
    <tbody>
    {% for run in suite.runs %}<tr>
      <td>{{ run.results_dir }}</td><td>{{ run.run_id }}</td><td>{{ run.started }}</td><td>{{ run.suite_source }}</td>
      <td>{{ run.seed }}</td><td>{{ run.device }}</td><td>{{ run.packages }}</td><td>{{ run.git }}</td><td>{{ run.rows }}</td>
    </tr>
    {% endfor %}
    </tbody>
  </table>
  </div>
  {% if suite.weights %}
  <p class="muted">Model weights:</p>
  <ul class="weights">
  {% for weight in suite.weights %}<li><b>{{ weight.model }}</b>: {{ weight.source }}{% if weight.runs %} <span class="muted">(runs {{ weight.runs }})</span>{% endif %}</li>
  {% endfor %}
  </ul>
  {% endif %}
  {% if suite.convergence %}
  <p class="muted">Convergence of the explainers with a completeness gate (chosen per model before the run):</p>
  <div class="table-wrap">
  <table class="provenance convergence">
    <thead><tr><th>model</th><th>explainer</th><th>setting</th><th>median gap</th><th>gate</th><th>converged</th><th>details</th><th>run</th></tr></thead>
    <tbody>
    {% for entry in suite.convergence %}<tr>
      <td>{{ entry.model }}</td><td>{{ entry.explainer }}</td><td>{{ entry.setting }}</td><td>{{ entry.gap }}</td>
      <td>{{ entry.gate }}</td><td>{{ entry.converged }}</td><td>{{ entry.details }}</td><td>{{ entry.run }}</td>
    </tr>
    {% endfor %}
    </tbody>
  </table>
  </div>
  {% endif %}
  {% if suite.plugins %}
  <p class="muted">Plugins, as the runs recorded them:</p>
  <div class="table-wrap">
  <table class="provenance plugins">
    <thead><tr><th>kind</th><th>label</th><th>title</th><th>plugin</th><th>from</th><th>parameters</th><th>summary</th></tr></thead>
    <tbody>
    {% for plugin in suite.plugins %}<tr>
      <td>{{ plugin.kind }}</td><td>{{ plugin.label }}</td><td>{{ plugin.title }}</td><td>{{ plugin.name }}</td>
      <td>{{ plugin.source }}</td><td>{{ plugin.params }}</td><td>{{ plugin.summary }}</td>
    </tr>
    {% endfor %}
    </tbody>
  </table>
  </div>
  {% endif %}
  <details>
    <summary class="muted">Full environment of each run</summary>
    {% for run in suite.runs %}
    <div class="run">
      <dl class="env">
        <dt>run id</dt><dd>{{ run.run_id }} ({{ run.results_dir }})</dd>
        {% for key, value in run.environment.items() %}<dt>{{ key }}</dt><dd>{{ value }}</dd>{% endfor %}
        {% if not run.from_manifest %}<dt>note</dt><dd>no manifest for this run; values read from its rows</dd>{% endif %}
      </dl>
    </div>
    {% endfor %}
  </details>
</section>
{% endfor %}
</main>
<footer>
  Means are over images (the rows of one image are averaged first); brackets are 95 % percentile
  bootstrap intervals from {{ resamples }} resamples of the images (seed {{ seed }}). Ranks are
  within each model; ⚠ marks explainer × model pairs whose median completeness gap exceeds
  their gate (the rows' max_completeness_gap, else {{ gap_limit }}): such pairs are greyed and
  not ranked (⊘), as are pairs with no value; the notes under a table say which and why.
  Built with xaibench {{ version }}; see docs/leaderboard.md.
</footer>
<script>{{ script }}</script>
</body>
</html>
"""
