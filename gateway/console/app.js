// The TradeServer web console: sign in with a token, then the trader's view, updated by
// the server's private event stream (GET /v1/events). No framework, no build step.
// Every request goes to this gateway's /v1 API with the session cookie; those that change
// something carry X-TradeServer-Console (see gateway/console.py).

const $ = (selector, root = document) => root.querySelector(selector);
const state = { symbols: new Map(), fillsBefore: null, historyAfter: 0, events: null, replacing: null };

// HTTP --------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-TradeServer-Console"] = "1";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : null;
  if (!response.ok) {
    const error = (data && data.error) || {};
    if (response.status === 401 && path !== "/v1/session") showSignIn("Your session ended: sign in again.");
    throw new ApiError(response.status, error.code || "HTTP_" + response.status, error.message || response.statusText);
  }
  return data;
}

// EXACT DECIMALS (client-side checks only; the server decides) --------------------------

function decimal(text) {
  const match = /^(\d+)(?:\.(\d+))?$/.exec(String(text).trim());
  if (!match) return null;
  const fraction = match[2] || "";
  return { units: BigInt(match[1] + fraction), scale: fraction.length };
}

function isMultiple(value, step) {
  const a = decimal(value);
  const b = decimal(step);
  if (!a || !b || b.units === 0n) return false;
  const scale = Math.max(a.scale, b.scale);
  const x = a.units * 10n ** BigInt(scale - a.scale);
  const y = b.units * 10n ** BigInt(scale - b.scale);
  return x % y === 0n;
}

function positive(value) {
  const d = decimal(value);
  return d !== null && d.units > 0n;
}

// RENDERING -----------------------------------------------------------------------------

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) td.className = className;
  return td;
}

function fillRows(table, rows, toCells, append = false) {
  const body = $("tbody", table);
  if (!append) body.replaceChildren();
  for (const row of rows) {
    const tr = document.createElement("tr");
    tr.append(...toCells(row));
    body.append(tr);
  }
  if (!body.children.length) {
    const tr = document.createElement("tr");
    const td = cell("Nothing yet.", "hint");
    td.colSpan = $("thead tr", table).children.length;
    tr.append(td);
    body.append(tr);
  }
}

const sideCell = (side) => cell(side, side);
const signed = (value) => cell(value, String(value).startsWith("-") ? "num down" : "num up");
const time = (iso) => (iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "Z") : "");

function percent(ratio) {
  const shown = (Number(ratio) * 100).toFixed(2); // display only: the ledger keeps decimals
  if (Number.isNaN(Number(shown))) return String(ratio);
  return shown === "-0.00" || shown === "0.00" ? "0.00 %" : (shown.startsWith("-") ? "" : "+") + shown + " %";
}

async function loadAccount() {
  const a = await api("GET", "/v1/account");
  const shown = [
    ["Cash", a.cash], ["Reserved", a.reserved_cash], ["Available", a.available_cash],
    ["Market value", a.market_value], ["Equity", a.equity], ["Return", percent(a.total_return)],
    ["Realised P&L", a.realized_pnl], ["Unrealised P&L", a.unrealized_pnl],
    ["Fees paid", a.commission_paid + " + tax " + a.tax_paid],
  ];
  $("#account").replaceChildren(...shown.map(([label, value]) => {
    const div = document.createElement("div");
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = label;
    dd.textContent = value;
    dd.dataset.field = label.toLowerCase().replace(/[^a-z]+/g, "_");
    div.append(dt, dd);
    return div;
  }));
}

async function loadOrders() {
  const orders = await api("GET", "/v1/orders?status=open&limit=200");
  fillRows($("#orders"), orders, (o) => {
    const actions = document.createElement("td");
    const box = document.createElement("div");
    box.className = "actions";
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.textContent = "Cancel";
    cancel.setAttribute("aria-label", `Cancel order ${o.id}`);
    cancel.addEventListener("click", () => cancelOrder(o.id, cancel));
    const replace = document.createElement("button");
    replace.type = "button";
    replace.className = "quiet";
    replace.textContent = "Replace";
    replace.setAttribute("aria-label", `Replace order ${o.id}`);
    replace.addEventListener("click", () => startReplace(o));
    box.append(cancel, replace);
    actions.append(box);
    const row = [
      cell(o.id), cell(o.symbol), sideCell(o.side), cell(o.type), cell(o.qty, "num"),
      cell(o.filled_qty, "num"), cell(o.limit_price ?? "", "num"), cell(o.stop_price ?? o.trail_percent ?? "", "num"),
      cell(o.status), actions,
    ];
    return row;
  });
  for (const tr of $("#orders tbody").children) tr.dataset.orderId = tr.firstChild.textContent;
}

async function loadPositions() {
  const positions = await api("GET", "/v1/positions");
  fillRows($("#positions"), positions.filter((p) => p.qty !== "0"), (p) => [
    cell(p.symbol), cell(p.qty, "num"), cell(p.available_qty, "num"), cell(p.avg_cost, "num"),
    cell(p.last_price ?? "", "num"), cell(p.market_value, "num"), signed(p.unrealized_pnl),
  ]);
}

const fillCells = (f) => [
  cell(time(f.time)), cell(f.order_id), cell(f.symbol), sideCell(f.side), cell(f.qty, "num"),
  cell(f.price, "num"), cell(f.value, "num"), cell(f.commission, "num"), cell(f.tax, "num"),
];

async function loadFills(older = false) {
  const query = older && state.fillsBefore ? `&before_id=${state.fillsBefore}` : "";
  const fills = await api("GET", `/v1/fills?limit=50${query}`);
  fillRows($("#fills"), fills, fillCells, older);
  if (fills.length) state.fillsBefore = fills[fills.length - 1].id;
  $("#fills-more").hidden = fills.length < 50;
}

const historyCells = (h) => [
  cell(h.seq), cell(time(h.time)), cell(h.kind), cell(h.order_id ?? ""), cell(h.symbol ?? ""),
  h.side ? sideCell(h.side) : cell(""), cell(h.qty ?? "", "num"), cell(h.price ?? "", "num"),
  cell(h.status ?? ""), cell(h.cash ?? "", "num"),
];

async function loadHistory(more = false) {
  const after = more ? state.historyAfter : 0;
  const page = await api("GET", `/v1/history?limit=50&after_seq=${after}`);
  fillRows($("#history"), page.entries, historyCells, more);
  if (page.entries.length) state.historyAfter = page.entries[page.entries.length - 1].seq;
  $("#history-more").hidden = page.next_after_seq === null;
}

async function loadSymbols() {
  const symbols = await api("GET", "/v1/symbols");
  const select = $("#ticket select[name=symbol]");
  select.replaceChildren(...symbols.map((s) => {
    state.symbols.set(s.symbol, s);
    const option = document.createElement("option");
    option.value = s.symbol;
    option.textContent = `${s.symbol} ${s.name}`;
    return option;
  }));
  showRules();
}

// ORDER TICKET --------------------------------------------------------------------------

function showRules() {
  const form = $("#ticket");
  const s = state.symbols.get(form.symbol.value);
  const type = form.type.value;
  for (const label of form.querySelectorAll("label[data-for]")) {
    label.hidden = !label.dataset.for.split(" ").includes(type);
  }
  $("#ticket-rules").textContent = s
    ? `${s.symbol}: tick ${s.tick_size}, lot ${s.lot_size}, previous close ${s.prev_close}` +
      (s.limit_down ? `, limits ${s.limit_down}–${s.limit_up}` : "")
    : "";
}

function ticketOrder(form) {
  const order = {
    symbol: form.symbol.value, side: form.side.value, type: form.type.value,
    qty: form.qty.value.trim(), time_in_force: form.time_in_force.value,
  };
  for (const name of ["limit_price", "stop_price", "trail_percent"]) {
    const label = form[name].closest("label");
    if (!label.hidden && form[name].value.trim()) order[name] = form[name].value.trim();
  }
  return order;
}

// What can be told before asking the server; it checks all of it again.
function ticketProblem(order) {
  const s = state.symbols.get(order.symbol);
  if (!s) return "Choose a symbol.";
  if (!positive(order.qty)) return "Quantity must be a number above zero.";
  const step = order.side === "buy" ? s.lot_size : s.qty_step;
  if (!isMultiple(order.qty, step)) return `Quantity must be a multiple of ${step} for a ${order.side}.`;
  const needs = { limit: ["limit_price"], stop: ["stop_price"], stop_limit: ["limit_price", "stop_price"], trailing_stop: ["trail_percent"], market: [] };
  for (const name of needs[order.type]) {
    if (!order[name]) return `${name.replace("_", " ")} is required for a ${order.type.replace("_", " ")} order.`;
    if (!positive(order[name])) return `${name.replace("_", " ")} must be a number above zero.`;
    if (name !== "trail_percent" && !isMultiple(order[name], s.tick_size)) {
      return `${name.replace("_", " ")} must be a multiple of the tick, ${s.tick_size}.`;
    }
  }
  return null;
}

async function sendOrder(event) {
  event.preventDefault();
  const form = event.target;
  const message = $("#ticket-message");
  const order = ticketOrder(form);
  const problem = ticketProblem(order);
  if (problem) {
    message.className = "error";
    message.textContent = problem;
    return;
  }
  message.className = "";
  message.textContent = "Sending…";
  try {
    const placed = await api("POST", "/v1/orders", order);
    message.className = "ok";
    message.textContent = `Order ${placed.id} accepted: ${placed.side} ${placed.qty} ${placed.symbol}, ${placed.status}.`;
    refreshSoon();
  } catch (error) {
    message.className = "error";
    message.textContent = `Refused (${error.code}): ${error.message}`;
  }
}

async function cancelOrder(id, button) {
  button.disabled = true;
  try {
    await api("DELETE", `/v1/orders/${id}`);
  } catch (error) {
    $("#ticket-message").className = "error";
    $("#ticket-message").textContent = `Order ${id} not canceled (${error.code}): ${error.message}`;
  }
  refreshSoon();
}

function startReplace(order) {
  const form = $("#replace");
  state.replacing = order;
  form.hidden = false;
  $("#replace-title").textContent = `Replace order ${order.id} (${order.side} ${order.qty} ${order.symbol})`;
  form.qty.value = order.qty;
  form.limit_price.value = order.limit_price ?? "";
  form.limit_price.closest("label").hidden = order.limit_price === null;
  $("#replace-message").textContent = "";
  form.qty.focus();
}

async function sendReplace(event) {
  event.preventDefault();
  const form = event.target;
  const order = state.replacing;
  const change = {};
  if (form.qty.value.trim() !== order.qty) change.qty = form.qty.value.trim();
  if (order.limit_price !== null && form.limit_price.value.trim() !== order.limit_price) {
    change.limit_price = form.limit_price.value.trim();
  }
  try {
    const replaced = await api("PATCH", `/v1/orders/${order.id}`, change);
    $("#replace-message").className = "ok";
    $("#replace-message").textContent = `Order ${order.id} replaced by order ${replaced.id}.`;
    form.hidden = true;
    refreshSoon();
  } catch (error) {
    $("#replace-message").className = "error";
    $("#replace-message").textContent = `Not replaced (${error.code}): ${error.message}`;
  }
}

// LIVE UPDATES --------------------------------------------------------------------------

let refreshTimer = null;

function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshAll, 150);
}

async function refreshAll() {
  try {
    await Promise.all([loadAccount(), loadOrders(), loadPositions(), loadFills(), loadHistory()]);
  } catch (error) {
    if (error.status !== 401) console.error(error);
  }
}

const EVENTS = [
  "order.accepted", "order.partially_filled", "order.filled", "order.canceled", "order.expired",
  "order.replaced", "order.rejected", "order.triggered", "events.lost",
];

function listen() {
  closeEvents();
  const source = new EventSource("/v1/events");
  state.events = source;
  source.onopen = () => { $("#live").textContent = "live"; };
  source.onerror = () => { $("#live").textContent = "reconnecting…"; };
  for (const name of EVENTS) source.addEventListener(name, refreshSoon);
  source.addEventListener("session.ended", () => showSignIn("Your token was changed: sign in again."));
}

function closeEvents() {
  if (state.events) state.events.close();
  state.events = null;
}

// SIGN IN AND OUT -----------------------------------------------------------------------

function showSignIn(message = "") {
  closeEvents();
  $("#trader").hidden = true;
  $("#who").hidden = true;
  $("#sign-in").hidden = false;
  $("#sign-in-error").textContent = message;
  $("#token").focus();
}

async function showTrader(session) {
  $("#sign-in").hidden = true;
  $("#user-name").textContent = session.name + (session.is_admin ? " (admin)" : "");
  $("#who").hidden = false;
  $("#trader").hidden = false;
  await loadSymbols();
  listen();
  await refreshAll();
}

async function signIn(event) {
  event.preventDefault();
  const input = $("#token");
  try {
    const session = await api("POST", "/v1/session", { token: input.value });
    input.value = "";
    await showTrader(session);
  } catch (error) {
    input.value = "";
    $("#sign-in-error").textContent =
      error.status === 401 ? "That token is not valid." : `Could not sign in (${error.code}): ${error.message}`;
  }
}

async function signOut() {
  await api("DELETE", "/v1/session").catch(() => {});
  showSignIn("Signed out.");
}

async function start() {
  $("#sign-in-form").addEventListener("submit", signIn);
  $("#sign-out").addEventListener("click", signOut);
  $("#ticket").addEventListener("submit", sendOrder);
  $("#ticket").addEventListener("change", showRules);
  $("#replace").addEventListener("submit", sendReplace);
  $("#replace-cancel").addEventListener("click", () => { $("#replace").hidden = true; });
  $("#fills-more").addEventListener("click", () => loadFills(true));
  $("#history-more").addEventListener("click", () => loadHistory(true));
  try {
    await showTrader(await api("GET", "/v1/session"));
  } catch {
    showSignIn();
  }
}

start();
