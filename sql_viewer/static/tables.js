// Table browser: the catalogue on the left, a table's shape and latest rows on the right.
"use strict";

const list = document.getElementById("table-list");
const detail = document.getElementById("table-detail");

function partitionText(p) {
  if (!p) return null;
  if (p.type === "hypertable") return `TimescaleDB hypertable on ${p.time_column}, ${counted(p.chunks, "chunk")}`;
  return `partitioned by ${p.key}, ${counted(p.partitions, "partition")}`;
}

function compressionText(p) {
  if (!p || p.type !== "hypertable") return null;
  const c = p.compression;
  if (!c || !c.enabled) return "compression: off for this hypertable";
  if (c.compressed_chunks === null) return "compression: on (figures not read: a relation was locked)";
  if (!c.compressed_chunks) return `compression: on, no chunk compressed yet (of ${p.chunks})`;
  const ratio = c.after_bytes ? ` (${(c.before_bytes / c.after_bytes).toFixed(1)}×)` : "";
  return `compression: ${c.compressed_chunks} of ${counted(p.chunks, "chunk")} compressed, `
    + `${formatCount(c.before_bytes)} → ${formatCount(c.after_bytes)} bytes${ratio}`;
}

function sizeText(t) {
  if (t.size_bytes === null) return "size unknown";
  const bytes = `${formatCount(t.size_bytes)} bytes`;
  return t.size_estimated ? `~${bytes} (estimate: a relation was locked)` : bytes;
}

function storageText(storage) {
  return storage ? `storage: ${storage.label}` : "";
}

async function showTable(name, item) {
  for (const li of list.children) li.classList.toggle("active", li === item);
  detail.replaceChildren(el("p", { className: "muted", text: "loading…" }));
  try {
    const t = await apiJson("/api/tables/" + encodeURIComponent(name));
    const columns = el("table", { className: "grid" });
    renderGrid(columns, ["column", "type", "nullable"], t.columns.map((c) => [c.name, c.type, c.nullable ? "yes" : "no"]));
    const latest = el("table", { className: "grid", id: "latest-rows" });
    renderGrid(latest, t.latest_rows.columns, t.latest_rows.rows, t.latest_rows.column_types);
    const order = t.order_column ? ` ORDER BY ${JSON.stringify(t.order_column)} DESC` : "";
    const sql = `SELECT * FROM ${t.name.split(".").map((p) => JSON.stringify(p)).join(".")}${order} LIMIT 100`;
    detail.replaceChildren(
      el("h2", { text: t.name }),
      el("p", {}, [
        `${t.kind} · ~${formatCount(t.estimated_rows)} rows (estimate) · ${sizeText(t)}`,
        partitionText(t.partitioning) ? el("br") : null,
        partitionText(t.partitioning),
        compressionText(t.partitioning) ? el("br") : null,
        compressionText(t.partitioning),
      ]),
      el("p", { className: "muted", id: "storage-mode", text: `${storageText(t.storage)} · ${t.storage.note}` }),
      el("p", {}, el("a", { href: "/console?sql=" + encodeURIComponent(sql), text: "open in the SQL console" })),
      el("h2", { text: "Columns" }), el("div", { className: "scroll" }, columns),
      el("h2", { text: `Latest ${t.latest_rows.row_count} rows` + (t.order_column ? ` by ${t.order_column}` : "") }),
      el("div", { className: "scroll" }, latest),
    );
  } catch (err) {
    detail.replaceChildren(el("div", { className: "error", text: err.message }));
  }
}

async function loadTables() {
  const status = document.getElementById("tables-status");
  try {
    const { tables, storage } = await apiJson("/api/tables");
    status.textContent = `${tables.length} tables readable by the viewer · ${storageText(storage)}`;
    list.replaceChildren(...tables.map((t) => {
      const item = el("li", { "data-table": t.name }, [
        t.name, el("span", { className: "meta", text: `${t.kind} · ~${formatCount(t.estimated_rows)} rows` })]);
      item.addEventListener("click", () => showTable(t.name, item));
      return item;
    }));
  } catch (err) {
    status.textContent = err.message;
    status.className = "error";
  }
}

loadTables();
