// Shared helpers: API calls with the optional bearer token, and safe DOM building.
"use strict";

const TOKEN_KEY = "openpipe.viewer.token";

async function api(path, options = {}, retried = false) {
  const headers = Object.assign({}, options.headers || {});
  const token = localStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401 && !retried) {
    const entered = window.prompt("This viewer needs its access token (OPENPIPE_VIEWER_TOKEN):");
    if (entered) {
      localStorage.setItem(TOKEN_KEY, entered.trim());
      return api(path, options, true);
    }
  }
  return response;
}

async function apiJson(path, options = {}) {
  const response = await api(path, options);
  let body = null;
  try { body = await response.json(); } catch (_) { body = { error: response.statusText }; }
  if (!response.ok) {
    const err = new Error((body && body.error) || ("HTTP " + response.status));
    err.body = body;
    err.status = response.status;
    throw err;
  }
  return body;
}

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key === "text") node.textContent = value;
    else if (key === "className") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of [].concat(children)) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function cellText(value) {
  if (value === null || value === undefined) return "NULL";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

const NUMERIC_TYPES = new Set(["int2", "int4", "int8", "float4", "float8", "numeric", "oid"]);

function renderGrid(table, columns, rows, types = []) {
  table.replaceChildren();
  const head = el("tr", {}, columns.map((c, i) => el("th", { title: types[i] || "" , text: c })));
  table.append(el("thead", {}, head));
  const body = el("tbody");
  for (const row of rows) {
    body.append(el("tr", {}, row.map((v, i) => el("td", {
      className: v === null ? "null" : (NUMERIC_TYPES.has(types[i]) ? "num" : ""),
      title: typeof v === "string" && v.length > 60 ? v : null,
      text: cellText(v),
    }))));
  }
  table.append(body);
}

function formatCount(n) {
  return n === null || n === undefined ? "unknown" : Number(n).toLocaleString("en-US");
}

// "1 chunk", "3 chunks": a count with its noun in the right number.
function counted(n, noun) {
  return `${formatCount(n)} ${Number(n) === 1 ? noun : `${noun}s`}`;
}
