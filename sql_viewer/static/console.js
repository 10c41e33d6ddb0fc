// SQL console: Ctrl+Enter runs, paged results, chart, CSV download, history in localStorage.
"use strict";

const HISTORY_KEY = "openpipe.viewer.history";
const HISTORY_MAX = 50;
const PAGE_SIZE = 100;

const sqlBox = document.getElementById("sql");
const limitBox = document.getElementById("limit");
const statusLine = document.getElementById("status");
const errorBox = document.getElementById("error");
const grid = document.getElementById("results");
const chartBox = document.getElementById("chart-box");
const csvButton = document.getElementById("download-csv");
const pager = document.getElementById("pager");
let result = null;
let page = 0;
let lastSql = "";

function loadHistory() {
  try { return JSON.parse(localStorage.getItem(HISTORY_KEY)) || []; } catch (_) { return []; }
}

function remember(sql) {
  const entries = [sql, ...loadHistory().filter((s) => s !== sql)].slice(0, HISTORY_MAX);
  localStorage.setItem(HISTORY_KEY, JSON.stringify(entries));
  showHistory();
}

function showHistory() {
  const list = document.getElementById("history");
  list.replaceChildren(...loadHistory().map((sql) =>
    el("li", { title: sql, text: sql, onclick: () => { sqlBox.value = sql; sqlBox.focus(); } })));
}

function showPage() {
  const pages = Math.max(1, Math.ceil(result.rows.length / PAGE_SIZE));
  page = Math.min(Math.max(page, 0), pages - 1);
  const rows = result.rows.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
  renderGrid(grid, result.columns, rows, result.column_types);
  pager.hidden = pages <= 1;
  document.getElementById("page-info").textContent = `page ${page + 1} of ${pages}`;
}

function showError(err) {
  const body = err.body || {};
  let text = body.error || err.message;
  if (body.position) {
    const pos = body.position - 1;
    const line = sqlBox.value.slice(0, pos).split("\n").length;
    text += `\n(at position ${body.position}, line ${line})`;
    sqlBox.focus();
    sqlBox.setSelectionRange(pos, Math.min(pos + 1, sqlBox.value.length));
  }
  if (body.hint) text += "\nhint: " + body.hint;
  errorBox.textContent = text;
  errorBox.hidden = false;
}

function truncationNote(result) {
  const cells = result.cells_cut ? `; ${formatCount(result.cells_cut)} long cells cut` : "";
  switch (result.truncated_reason) {
    case "row_cap":
      return ` — truncated at the ${formatCount(result.row_count)}-row cap${cells}`;
    case "max_result_bytes":
      return ` — truncated: the response size limit (viewer.max_result_bytes) was reached${cells}`;
    case "max_cell_bytes":
      return ` — ${formatCount(result.cells_cut)} long cells cut (viewer.max_cell_bytes)`;
    default:
      return result.truncated ? " — truncated" : "";
  }
}

async function runQuery() {
  const sql = sqlBox.value.trim();
  if (!sql) return;
  const limit = Number(limitBox.value) || null;
  errorBox.hidden = true;
  statusLine.textContent = "running…";
  document.getElementById("run").disabled = true;
  try {
    result = await apiJson("/api/query", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sql, limit }),
    });
    lastSql = sql;
    page = 0;
    remember(sql);
    statusLine.textContent = `${formatCount(result.row_count)} rows in ${result.elapsed_ms} ms` +
      truncationNote(result);
    statusLine.className = result.truncated ? "lag-some" : "muted";
    chartBox.hidden = !drawChart(document.getElementById("chart"), result.columns, result.column_types, result.rows);
    csvButton.disabled = false;
    showPage();
  } catch (err) {
    statusLine.textContent = "failed";
    showError(err);
  } finally {
    document.getElementById("run").disabled = false;
  }
}

async function downloadCsv() {
  const params = new URLSearchParams({ sql: lastSql });
  if (Number(limitBox.value)) params.set("limit", limitBox.value);
  const response = await api("/api/query.csv?" + params.toString());
  if (!response.ok) {
    showError({ body: await response.json().catch(() => ({})), message: "CSV download failed" });
    return;
  }
  const url = URL.createObjectURL(await response.blob());
  const link = el("a", { href: url, download: "query.csv" });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

sqlBox.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
    event.preventDefault();
    runQuery();
  }
});
document.getElementById("run").addEventListener("click", runQuery);
csvButton.addEventListener("click", downloadCsv);
document.getElementById("prev").addEventListener("click", () => { page -= 1; showPage(); });
document.getElementById("next").addEventListener("click", () => { page += 1; showPage(); });
document.getElementById("clear-history").addEventListener("click", () => {
  localStorage.removeItem(HISTORY_KEY);
  showHistory();
});
const preset = new URLSearchParams(location.search).get("sql");
if (preset) sqlBox.value = preset;
showHistory();
