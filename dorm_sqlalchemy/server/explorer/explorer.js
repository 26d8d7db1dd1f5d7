// The dorm explorer: tenants, tables, paged rows, schema and a SQL console.
//
// Every value from the server reaches the page through textContent or
// element attributes set one by one, never through innerHTML, so data cannot
// inject markup. The token lives in sessionStorage: it is gone when the tab closes.
"use strict";

const TOKEN_KEY = "dorm.explorer.token";

const state = {
  tenant: null,
  table: null,
  tableRows: null,
  offset: 0,
  tab: "rows",
  nextTenants: null,
};

const $ = (id) => document.getElementById(id);

// -- HTTP ---------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const headers = { "Content-Type": "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;

  const response = await fetch(path, { ...options, headers });
  let body = null;
  try {
    body = await response.json();
  } catch (error) {
    body = null;
  }
  if (!response.ok) {
    const message = body && typeof body.error === "string" ? body.error : "HTTP " + response.status;
    if (response.status === 401) showAuthNeeded(message);
    throw new ApiError(response.status, message);
  }
  return body;
}

function query(sql, params) {
  const path = "/" + encodeURIComponent(state.tenant) + "/api/db/query/raw";
  return api(path, { method: "POST", body: JSON.stringify({ sql, params: params || [] }) });
}

function quoteIdentifier(name) {
  return '"' + name.replace(/"/g, '""') + '"';
}

// -- rendering ----------------------------------------------------------------

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return (unit === 0 ? String(value) : value.toFixed(1)) + " " + units[unit];
}

// Returns [text, CSS class] for one value in the API's JSON encoding.
function describeValue(value) {
  if (value === null) return ["NULL", "null"];
  if (typeof value === "number") return [String(value), "number"];
  if (typeof value === "string") return [value, ""];
  if (typeof value === "object") {
    if (typeof value.$blob === "string") {
      const padding = (value.$blob.match(/=*$/) || [""])[0].length;
      const size = (value.$blob.length / 4) * 3 - padding;
      return ["BLOB (" + size + " bytes)", "blob"];
    }
    if (typeof value.$int === "string") return [value.$int, "number"];
    if (typeof value.$real === "string") return [value.$real, "number"];
  }
  return [JSON.stringify(value), ""];
}

function renderTable(container, columns, rows) {
  container.replaceChildren();
  const table = element("table");
  const head = element("thead");
  const headRow = element("tr");
  for (const column of columns) headRow.appendChild(element("th", column));
  head.appendChild(headRow);
  table.appendChild(head);

  const body = element("tbody");
  for (const row of rows) {
    const tr = element("tr");
    for (const value of row) {
      const [text, className] = describeValue(value);
      const td = element("td", text, className);
      td.title = text;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  table.appendChild(body);
  container.appendChild(table);
  if (rows.length === 0) container.appendChild(element("p", "No rows.", "hint"));
}

function showError(id, message) {
  const box = $(id);
  box.textContent = message;
  box.hidden = false;
}

function clearError(id) {
  const box = $(id);
  box.textContent = "";
  box.hidden = true;
}

function showAuthNeeded(message) {
  $("auth-status").textContent = "Not connected: " + message;
  $("token-input").focus();
}

// -- tenants and tables -------------------------------------------------------

async function loadTenants(append) {
  clearError("global-error");
  const params = new URLSearchParams();
  if (append && state.nextTenants) params.set("after", state.nextTenants);
  let page;
  try {
    page = await api("/api/tenants?" + params.toString());
  } catch (error) {
    showError("global-error", error.message);
    return false;
  }
  $("auth-status").textContent = "Connected";

  const list = $("tenant-list");
  if (!append) list.replaceChildren();
  for (const tenant of page.tenants) {
    const button = element("button");
    button.type = "button";
    button.dataset.tenant = tenant.name;
    button.appendChild(element("span", tenant.name));
    button.appendChild(element("span", formatBytes(tenant.size), "count"));
    button.addEventListener("click", () => selectTenant(tenant.name));
    const item = element("li");
    item.appendChild(button);
    list.appendChild(item);
  }
  if (!append && page.tenants.length === 0) list.appendChild(element("li", "No tenants yet.", "hint"));
  state.nextTenants = page.next;
  $("more-tenants").hidden = !page.next;
  return true;
}

function markSelected(listId, attribute, value) {
  for (const button of $(listId).querySelectorAll("button")) {
    button.classList.toggle("selected", button.dataset[attribute] === value);
  }
}

async function selectTenant(name) {
  state.tenant = name;
  state.table = null;
  markSelected("tenant-list", "tenant", name);
  updateLocation();
  clearError("global-error");
  $("tables-heading").textContent = "Tables of " + name;

  const list = $("table-list");
  list.replaceChildren();
  let tables;
  try {
    tables = (await api("/api/tenants/" + encodeURIComponent(name) + "/tables")).tables;
  } catch (error) {
    showError("global-error", error.message);
    return;
  }
  for (const table of tables) {
    const button = element("button");
    button.type = "button";
    button.dataset.table = table.name;
    button.appendChild(element("span", table.name + (table.type === "view" ? " (view)" : "")));
    button.appendChild(element("span", table.rows === null ? "" : table.rows, "count"));
    button.addEventListener("click", () => selectTable(table.name, table.rows));
    const item = element("li");
    item.appendChild(button);
    list.appendChild(item);
  }
  if (tables.length === 0) list.appendChild(element("li", "No tables.", "hint"));
  return tables;
}

function selectTable(name, rowCount) {
  state.table = name;
  state.tableRows = rowCount;
  state.offset = 0;
  markSelected("table-list", "table", name);
  updateLocation();
  $("sql-input").value = "SELECT * FROM " + quoteIdentifier(name) + " LIMIT 100";
  showTab(state.tab === "sql" ? "rows" : state.tab);
}

function updateLocation() {
  const parts = [];
  if (state.tenant) parts.push(state.tenant);
  if (state.table) parts.push(state.table);
  $("location").textContent = parts.join(" / ");

  // The address keeps the selection, so it can be bookmarked or linked to:
  // #tenant=acme&table=notes.
  const params = new URLSearchParams();
  if (state.tenant) params.set("tenant", state.tenant);
  if (state.table) params.set("table", state.table);
  const hash = params.toString();
  if (location.hash.slice(1) !== hash) history.replaceState(null, "", hash ? "#" + hash : location.pathname);
}

async function openFromLocation() {
  const params = new URLSearchParams(location.hash.slice(1));
  const tenant = params.get("tenant");
  if (!tenant) return;
  const tables = await selectTenant(tenant);
  const table = (tables || []).find((entry) => entry.name === params.get("table"));
  if (table) selectTable(table.name, table.rows);
}

// -- rows, schema and SQL -----------------------------------------------------

function pageSize() {
  return Number($("page-size").value);
}

async function loadRows() {
  clearError("rows-error");
  if (!state.table) return;
  const size = pageSize();
  let result;
  try {
    // Fetching one row more than the page shows whether a next page exists.
    result = (await query("SELECT * FROM " + quoteIdentifier(state.table) + " LIMIT ? OFFSET ?", [size + 1, state.offset])).result;
  } catch (error) {
    showError("rows-error", error.message);
    return;
  }
  const hasNext = result.rows.length > size;
  const rows = result.rows.slice(0, size);
  renderTable($("rows-table"), result.columns, rows);

  const first = rows.length ? state.offset + 1 : 0;
  const last = state.offset + rows.length;
  const total = state.tableRows === null || state.tableRows === undefined ? "" : " of " + state.tableRows;
  $("page-info").textContent = "Rows " + first + "–" + last + total;
  $("prev-page").disabled = state.offset === 0;
  $("next-page").disabled = !hasNext;
}

async function loadSchema() {
  clearError("schema-error");
  if (!state.table) return;
  try {
    const definition = (await query("SELECT sql FROM sqlite_schema WHERE name = ?", [state.table])).result;
    $("schema-sql").textContent = definition.rows.length ? definition.rows[0][0] || "" : "";
    const columns = (await query("SELECT * FROM pragma_table_xinfo(?)", [state.table])).result;
    renderTable($("schema-columns"), columns.columns, columns.rows);
  } catch (error) {
    showError("schema-error", error.message);
  }
}

async function runSql() {
  clearError("sql-error");
  $("sql-result").replaceChildren();
  if (!state.tenant) {
    showError("sql-error", "Choose a tenant first.");
    return;
  }
  const started = performance.now();
  $("sql-status").textContent = "Running…";
  try {
    const result = (await query($("sql-input").value)).result;
    renderTable($("sql-result"), result.columns, result.rows);
    const elapsed = Math.round(performance.now() - started);
    $("sql-status").textContent =
      result.meta.rows_read + " row(s) read, " + result.meta.rows_written + " written, " + elapsed + " ms";
  } catch (error) {
    $("sql-status").textContent = "";
    showError("sql-error", error.message);
  }
}

function showTab(tab) {
  state.tab = tab;
  for (const button of $("tabs").querySelectorAll("button")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === tab));
  }
  $("panel-rows").hidden = tab !== "rows";
  $("panel-schema").hidden = tab !== "schema";
  $("panel-sql").hidden = tab !== "sql";
  if (tab === "rows") loadRows();
  if (tab === "schema") loadSchema();
}

// -- start --------------------------------------------------------------------

function start() {
  $("token-input").value = sessionStorage.getItem(TOKEN_KEY) || "";
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
    loadTenants(false).then((connected) => connected && openFromLocation());
  });
  $("token-forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $("token-input").value = "";
    $("auth-status").textContent = "Token forgotten";
  });
  $("more-tenants").addEventListener("click", () => loadTenants(true));
  for (const button of $("tabs").querySelectorAll("button")) {
    button.addEventListener("click", () => showTab(button.dataset.tab));
  }
  $("prev-page").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - pageSize());
    loadRows();
  });
  $("next-page").addEventListener("click", () => {
    state.offset += pageSize();
    loadRows();
  });
  $("page-size").addEventListener("change", () => {
    state.offset = 0;
    loadRows();
  });
  $("run-sql").addEventListener("click", runSql);
  $("sql-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) runSql();
  });
  window.addEventListener("hashchange", openFromLocation);
  loadTenants(false).then((connected) => connected && openFromLocation());
}

document.addEventListener("DOMContentLoaded", start);
