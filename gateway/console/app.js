// The TradeServer web console: sign in with a token, then the trader's view (and, with the
// admin token, the operator's), updated by the server's push streams: the user's private
// events (GET /v1/events) and the public market data and run state (GET /v1/market/events).
// No framework, no build step, no polling; the charts are TradingView's lightweight-charts,
// served from /console/vendor/; the order book and the trade tape of an exchange-mode
// symbol are book.js's, the exact decimals decimal.js's. Every request goes to this
// gateway's /v1 API with the session cookie; those that change something carry
// X-TradeServer-Console (see gateway/console.py).

import { BookPanel } from "./book.js";
import { add, dec, decimal, growth, isMultiple, money, mul, positive, sub, ZERO } from "./decimal.js";

const $ = (selector, root = document) => root.querySelector(selector);
const state = {
  symbols: new Map(), fillsBefore: null, fillsNewest: null, historyAfter: 0, events: null, replacing: null,
  session: null, market: null, marketKey: "", account: null, positions: new Map(), health: null,
  ticks: new Map(), charts: {}, equityLast: 0, report: null,
  book: null, // the order book and trade tape of the charted symbol (book.js)
};
const MAX_TICKS = 20000; // per symbol, in this page's memory

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

// What returns are measured against: the cash put in and the shares deposited (their value
// when deposited), this epoch.
const capital = (a) => add(dec(a.initial_cash), dec(a.deposited_value ?? "0"));

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
  showAccount(await api("GET", "/v1/account"));
}

function showAccount(a) {
  state.account = a;
  const shown = [
    ["Cash", a.cash], ["Reserved", a.reserved_cash], ["Available", a.available_cash],
    ["Market value", a.market_value], ["Equity", a.equity], ["Return", percent(a.total_return)],
    // shares the admin put in count in the capital, not as profit
    ...(dec(a.deposited_value ?? "0").units ? [["Shares deposited", a.deposited_value]] : []),
    ["Realised P&L", a.realized_pnl], ["Unrealised P&L", a.unrealized_pnl],
    ["Fees paid", a.commission_paid + " + tax " + a.tax_paid],
    ["Since", a.reset_at ? `reset ${a.reset_at.slice(0, 19).replace("T", " ")} UTC (epoch ${a.epoch})` : "opened"],
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
  const positions = (await api("GET", "/v1/positions")).filter((p) => p.qty !== "0");
  state.positions = new Map(positions.map((p) => [p.symbol, { ...p }]));
  fillRows($("#positions"), positions, (p) => [
    cell(p.symbol), cell(p.qty, "num"), cell(p.available_qty, "num"), cell(p.avg_cost, "num"),
    cell(p.last_price ?? "", "num"), cell(p.market_value, "num"), signed(p.unrealized_pnl),
  ]);
  for (const tr of $("#positions tbody").children) tr.dataset.symbol = tr.firstChild.textContent;
  followMarket();
}

const fillCells = (f) => [
  cell(time(f.time)), cell(f.order_id), cell(f.symbol), sideCell(f.side), cell(f.qty, "num"),
  cell(f.price, "num"), cell(f.value, "num"), cell(f.commission, "num"), cell(f.tax, "num"),
];

const PAGE = 50;

// Fills, newest first: "older" adds the next page below; "live" (after an event) puts the
// new fills on top and keeps the pages already read below them.
async function loadFills(mode = "live") {
  if (mode === "older" && state.fillsBefore) {
    const fills = await api("GET", `/v1/fills?limit=${PAGE}&before_id=${state.fillsBefore}`);
    fillRows($("#fills"), fills, fillCells, true);
    if (fills.length) state.fillsBefore = fills[fills.length - 1].id;
    $("#fills-more").hidden = fills.length < PAGE;
    return;
  }
  const fills = await api("GET", `/v1/fills?limit=${PAGE}`);
  const fresh = state.fillsNewest === null ? fills : fills.filter((f) => f.id > state.fillsNewest);
  if (state.fillsNewest === null || fresh.length === PAGE) { // first page, or too many to join
    fillRows($("#fills"), fills, fillCells);
    state.fillsBefore = fills.length ? fills[fills.length - 1].id : null;
    $("#fills-more").hidden = fills.length < PAGE;
  } else {
    const body = $("#fills tbody");
    for (const f of [...fresh].reverse()) {
      const tr = document.createElement("tr");
      tr.append(...fillCells(f));
      body.prepend(tr);
    }
  }
  if (fills.length) state.fillsNewest = Math.max(state.fillsNewest ?? 0, fills[0].id);
}

const historyCells = (h) => [
  cell(h.seq), cell(time(h.time)), cell(h.kind), cell(h.order_id ?? ""), cell(h.symbol ?? ""),
  h.side ? sideCell(h.side) : cell(""), cell(h.qty ?? "", "num"), cell(h.price ?? "", "num"),
  cell(h.status ?? ""), cell(h.cash ?? "", "num"),
];

// A page at a time: a second click while one loads would read the same page twice.
async function whileDisabled(button, load) {
  button.disabled = true;
  try {
    await load();
  } finally {
    button.disabled = false;
  }
}

// The operation log, oldest first: "more" adds the next page; "live" adds new entries at
// the end once the reader has reached it, and otherwise leaves the pages read alone (the
// "Later entries" button brings the rest).
async function loadHistory(mode = "live") {
  if (mode === "live" && state.historyAfter && !$("#history-more").hidden) return;
  const after = state.historyAfter;
  const page = await api("GET", `/v1/history?limit=${PAGE}&after_seq=${after}`);
  if (after === 0 || page.entries.length) fillRows($("#history"), page.entries, historyCells, after > 0);
  if (page.entries.length) state.historyAfter = page.entries[page.entries.length - 1].seq;
  $("#history-more").hidden = page.next_after_seq === null;
}

async function loadSymbols() {
  const symbols = await api("GET", "/v1/symbols");
  const options = () => symbols.map((s) => {
    state.symbols.set(s.symbol, s);
    const option = document.createElement("option");
    option.value = s.symbol;
    option.textContent = `${s.symbol} ${s.name}`;
    return option;
  });
  $("#ticket select[name=symbol]").replaceChildren(...options());
  const chosen = $("#chart-symbol").value;
  $("#chart-symbol").replaceChildren(...options());
  if (state.symbols.has(chosen)) $("#chart-symbol").value = chosen;
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

// A level of the order book was clicked: its price goes into the ticket, for that symbol.
function usePrice(symbol, price) {
  const form = $("#ticket");
  form.symbol.value = symbol;
  if (!["limit", "stop_limit"].includes(form.type.value)) form.type.value = "limit";
  showRules();
  form.limit_price.value = price;
  const message = $("#ticket-message");
  message.className = "";
  message.textContent = `Limit price ${price} from the ${symbol} book: choose the side and quantity, then send.`;
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

function startReset() {
  const form = $("#reset");
  form.cash.value = state.account ? state.account.initial_cash : "";
  $("#reset-confirm").hidden = false;
  $("#reset-message").textContent = "";
  form.cash.focus();
}

async function sendReset(event) {
  event.preventDefault();
  const form = event.target;
  const message = $("#reset-message");
  const cash = form.cash.value.trim();
  if (!positive(cash) || decimal(cash).scale > 2) {
    message.className = "error";
    message.textContent = "Starting cash must be a number above zero, at most 2 decimals.";
    return;
  }
  try {
    const { reset } = await api("POST", "/v1/account/reset", { cash });
    const gone = reset.written_off.map((w) => `${w.qty} ${w.symbol}`).join(", ") || "nothing";
    message.className = "ok";
    message.textContent = `Account reset with ${reset.capital}; orders canceled: ${reset.canceled_orders.length}; written off: ${gone}.`;
    $("#reset-confirm").hidden = true;
    restartEquity();
    refreshSoon();
  } catch (error) {
    message.className = "error";
    message.textContent = `Not reset (${error.code}): ${error.message}`;
  }
}

function restartEquity() {
  // the curve of the new epoch replaces the old one at the next loadEquity
  delete $("#equity-chart").dataset.points;
  state.equityLast = 0;
}

// LIVE UPDATES --------------------------------------------------------------------------

let refreshTimer = null;

function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshAll, 150);
}

async function refreshAll() {
  try {
    // positions first: a quote that revalues the account between the two would otherwise
    // value the new cash with positions a reset has written off, and stay shown
    await loadPositions();
    await Promise.all([loadAccount(), loadOrders(), loadFills(), loadHistory(), loadEquity()]);
  } catch (error) {
    if (error.status !== 401) console.error(error);
  }
}

const EVENTS = [
  "order.accepted", "order.partially_filled", "order.filled", "order.canceled", "order.expired",
  "order.replaced", "order.rejected", "order.triggered", "events.lost", "account.reset",
  "account.deposited",
];

function listen() {
  closeEvents();
  const source = new EventSource("/v1/events");
  state.events = source;
  source.onopen = () => { $("#live").textContent = "live"; };
  source.onerror = () => { $("#live").textContent = "reconnecting…"; };
  for (const name of EVENTS) source.addEventListener(name, refreshSoon);
  source.addEventListener("account.reset", restartEquity); // a reset from elsewhere too
  source.addEventListener("session.ended", () => showSignIn("Your token was changed: sign in again."));
}

function closeEvents() {
  if (state.events) state.events.close();
  state.events = null;
  if (state.market) state.market.close();
  state.market = null;
  if (state.health) state.health.close();
  state.health = null;
  state.marketKey = "";
}

// MARKET STREAM: quotes (and depth) of the charted and the held symbols, and the run state

function followMarket() {
  if (!state.session) return;
  const wanted = new Set(state.positions.keys());
  if ($("#chart-symbol").value) wanted.add($("#chart-symbol").value);
  const key = [...wanted].filter((s) => state.symbols.has(s)).sort().join(",");
  if (key === state.marketKey && state.market) return;
  if (state.market) state.market.close();
  state.marketKey = key;
  const source = new EventSource("/v1/market/events" + (key ? "?symbols=" + encodeURIComponent(key) : ""));
  state.market = source;
  const onTick = (event) => takeTick(JSON.parse(event.data));
  source.addEventListener("quote", onTick);
  source.addEventListener("bar", onTick);
  source.addEventListener("depth", (event) => state.book.depth(JSON.parse(event.data)));
  // open again after a break too: the book asks for a snapshot (what the break lost)
  source.addEventListener("open", () => state.book.streamOpened(key ? key.split(",") : []));
  source.addEventListener("control", (event) => showControl(JSON.parse(event.data)));
}

const seconds = (iso) => Math.floor(Date.parse(iso.replace(/(\.\d{3})\d*Z$/, "$1Z")) / 1000);

function addTick(symbol, tick) {
  let ticks = state.ticks.get(symbol);
  if (!ticks) state.ticks.set(symbol, (ticks = []));
  if (ticks.length && tick.t < ticks[ticks.length - 1].t) return false; // older: skip
  ticks.push(tick);
  if (ticks.length > MAX_TICKS) ticks.splice(0, ticks.length - MAX_TICKS);
  return true;
}

function takeTick(message) {
  const last = message.type === "bar" ? message.close : message.last;
  const tick = message.type === "bar"
    ? { t: seconds(message.time), o: message.open, h: message.high, l: message.low, c: message.close }
    : { t: seconds(message.time), o: last, h: last, l: last, c: last };
  if (addTick(message.symbol, tick) && message.symbol === $("#chart-symbol").value) drawTick(tick);
  if (message.type === "quote") state.book.quote(message);
  revalue(message.symbol, last, tick.t);
}

// LIVE VALUATION: equity moves with the prices of what is held -----------------------------

function revalue(symbol, last, t) {
  const held = state.positions.get(symbol);
  const account = state.account;
  if (!held || !account || held.last_price === last) return;
  held.last_price = last;
  held.market_value = money(mul(dec(held.qty), dec(last)));
  held.unrealized_pnl = money(sub(dec(held.market_value), dec(held.cost_basis)));
  const row = $(`#positions tbody tr[data-symbol="${CSS.escape(symbol)}"]`);
  if (row) {
    row.children[4].textContent = last;
    row.children[5].textContent = held.market_value;
    row.replaceChild(signed(held.unrealized_pnl), row.children[6]);
  }
  let value = ZERO;
  let cost = ZERO;
  for (const p of state.positions.values()) {
    value = add(value, dec(p.market_value));
    cost = add(cost, dec(p.cost_basis));
  }
  const equity = add(dec(account.cash), value);
  showAccount({
    ...account,
    market_value: money(value),
    equity: money(equity),
    unrealized_pnl: money(sub(value, cost)),
    total_return: growth(equity, capital(account)),
  });
  drawEquity(t, state.account.equity);
}

// CHARTS ------------------------------------------------------------------------------------

const CHART_COLORS = { text: "#1b1f24", grid: "#e6e9ed", line: "#0b5cad", up: "#0a6b2e", down: "#a3161b" };

// A chart call that fails must not stop the live updates around it: lightweight-charts
// 5.2 can throw "Value is null" while it redraws its crosshair (upstream issue 2044).
function plot(call) {
  try {
    call();
  } catch (error) {
    console.warn("chart:", error);
  }
}

function makeChart(container) {
  const LC = window.LightweightCharts;
  const chart = LC.createChart(container, {
    autoSize: true,
    // The logo would bring a <style> element the page's CSP refuses; the page names
    // TradingView with a link beside the charts instead, as the licence asks.
    layout: {
      background: { color: "#ffffff" }, textColor: CHART_COLORS.text, fontSize: 12, attributionLogo: false,
    },
    grid: { vertLines: { color: CHART_COLORS.grid }, horzLines: { color: CHART_COLORS.grid } },
    timeScale: { timeVisible: true, secondsVisible: true },
    rightPriceScale: { borderColor: "#8a939e" },
  });
  return chart;
}

function priceFormat(step) {
  const places = (String(step).split(".")[1] || "").length;
  return { type: "price", precision: Math.max(places, 2), minMove: Number(step) };
}

// One point per second (line) or one candle per `width` seconds, from the kept ticks.
function bucketOf(t, style) {
  return style === "line" ? t : t - (t % Number(style));
}

function point(ticks, style) {
  // the point of the last bucket, from the ticks in it
  const t = bucketOf(ticks[ticks.length - 1].t, style);
  let i = ticks.length - 1;
  while (i > 0 && bucketOf(ticks[i - 1].t, style) === t) i -= 1;
  const inBucket = ticks.slice(i);
  const close = Number(inBucket[inBucket.length - 1].c);
  if (style === "line") return { time: t, value: close };
  return {
    time: t, open: Number(inBucket[0].o), close,
    high: Math.max(...inBucket.map((k) => Number(k.h))), low: Math.min(...inBucket.map((k) => Number(k.l))),
  };
}

function points(ticks, style) {
  const out = [];
  let start = 0;
  for (let i = 1; i <= ticks.length; i += 1) {
    if (i === ticks.length || bucketOf(ticks[i].t, style) !== bucketOf(ticks[start].t, style)) {
      out.push(point(ticks.slice(start, i), style));
      start = i;
    }
  }
  return out;
}

function drawPrice() {
  const symbol = $("#chart-symbol").value;
  const style = $("#chart-style").value;
  const box = $("#price-chart");
  if (!state.charts.price) state.charts.price = makeChart(box);
  const chart = state.charts.price;
  if (state.charts.priceSeries) chart.removeSeries(state.charts.priceSeries);
  const LC = window.LightweightCharts;
  const format = priceFormat(state.symbols.get(symbol)?.tick_size ?? "0.01");
  state.charts.priceSeries = style === "line"
    ? chart.addSeries(LC.LineSeries, { color: CHART_COLORS.line, lineWidth: 2, priceFormat: format })
    : chart.addSeries(LC.CandlestickSeries, {
      upColor: CHART_COLORS.up, downColor: CHART_COLORS.down, borderVisible: false,
      wickUpColor: CHART_COLORS.up, wickDownColor: CHART_COLORS.down, priceFormat: format,
    });
  const data = points(state.ticks.get(symbol) || [], style);
  plot(() => state.charts.priceSeries.setData(data));
  state.charts.priceLast = data.length ? data[data.length - 1].time : null;
  box.dataset.points = String(data.length);
  plot(() => chart.timeScale().scrollToRealTime());
  summarisePrice(symbol);
}

function drawTick(tick) {
  if (!state.charts.priceSeries) return;
  const symbol = $("#chart-symbol").value;
  const ticks = state.ticks.get(symbol);
  const style = $("#chart-style").value;
  const latest = point(ticks, style);
  plot(() => state.charts.priceSeries.update(latest));
  if (latest.time !== state.charts.priceLast) {
    state.charts.priceLast = latest.time;
    const box = $("#price-chart");
    box.dataset.points = String(Number(box.dataset.points || 0) + 1);
  }
  summarisePrice(symbol);
}

function summarisePrice(symbol) {
  const ticks = state.ticks.get(symbol) || [];
  const last = ticks[ticks.length - 1];
  $("#price-summary").textContent = last
    ? `${symbol} last ${last.c} at ${new Date(last.t * 1000).toISOString().slice(11, 19)} UTC`
    : `${symbol}: no price yet`;
  $("#price-chart").dataset.last = last ? last.c : "";
}

async function chooseChartSymbol() {
  const symbol = $("#chart-symbol").value;
  if (!state.ticks.get(symbol)?.length) {
    try {
      const quote = await api("GET", `/v1/quotes/${encodeURIComponent(symbol)}`);
      if (!state.ticks.get(symbol)?.length) {
        addTick(symbol, { t: seconds(quote.time), o: quote.last, h: quote.last, l: quote.last, c: quote.last });
      }
    } catch (error) {
      if (error.status !== 401) console.error(error);
    }
  }
  drawPrice();
  followMarket();
  const streaming = state.market?.readyState === EventSource.OPEN &&
    (!state.marketKey || state.marketKey.split(",").includes(symbol));
  state.book.show(symbol, streaming);
}

async function loadEquity() {
  let stats;
  try {
    stats = await api("GET", "/v1/stats");
  } catch (error) {
    if (error.status === 401) throw error;
    return; // the chart keeps what it had
  }
  if (!state.charts.equity) {
    state.charts.equity = makeChart($("#equity-chart"));
    state.charts.equitySeries = state.charts.equity.addSeries(window.LightweightCharts.AreaSeries, {
      lineColor: CHART_COLORS.line, topColor: "rgba(11, 92, 173, 0.25)", bottomColor: "rgba(11, 92, 173, 0.02)",
      lineWidth: 2, priceFormat: { type: "price", precision: 2, minMove: 0.01 },
    });
  }
  const bySecond = new Map();
  for (const p of stats.equity_curve) bySecond.set(seconds(p.time), p.equity);
  const data = [...bySecond].map(([time, equity]) => ({ time, value: Number(equity) }));
  const box = $("#equity-chart");
  if (!box.dataset.points) {
    plot(() => state.charts.equitySeries.setData(data));
    box.dataset.points = String(data.length);
  } else {
    // later refreshes add what is new: the live points already drawn stay
    for (const p of data.filter((d) => d.time >= state.equityLast)) {
      plot(() => state.charts.equitySeries.update(p));
      if (p.time !== state.equityLast) box.dataset.points = String(Number(box.dataset.points) + 1);
      state.equityLast = p.time;
    }
  }
  if (data.length) state.equityLast = Math.max(state.equityLast, data[data.length - 1].time);
  summariseEquity(stats.equity, stats.total_return);
}

function drawEquity(t, equity) {
  if (!state.charts.equitySeries) return;
  const at = Math.max(t, state.equityLast);
  plot(() => state.charts.equitySeries.update({ time: at, value: Number(equity) })); // plotting only
  const box = $("#equity-chart");
  if (at !== state.equityLast) box.dataset.points = String(Number(box.dataset.points || 0) + 1);
  state.equityLast = at;
  summariseEquity(equity, state.account.total_return);
}

function summariseEquity(equity, ratio) {
  $("#equity-summary").textContent = `Equity ${equity}, return ${percent(ratio)}`;
  $("#equity-chart").dataset.last = equity;
}

// OPERATOR VIEW (admin token) ---------------------------------------------------------------

function figures(list, pairs) {
  list.replaceChildren(...pairs.map(([label, value]) => {
    const div = document.createElement("div");
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = label;
    dd.textContent = value === null || value === undefined ? "—" : String(value);
    dd.dataset.field = label.toLowerCase().replace(/[^a-z]+/g, "_");
    div.append(dt, dd);
    return div;
  }));
}

const yesNo = (flag) => (flag ? "yes" : "no");

function showControl(c) {
  const session = c.session_open ? "session open" : "session closed";
  $("#market-state").textContent = `Market ${c.state}, ${session}`;
  if (!state.session || !state.session.is_admin) return;
  const pairs = [
    ["State", c.state], ["Trading", yesNo(c.trading)], ["Session open", yesNo(c.session_open)],
    ["Trading day", c.trading_day],
  ];
  for (const [profile, m] of Object.entries(c.markets || {})) {
    pairs.push([`Market ${profile}`, `${m.trading ? "trading" : "not trading"}, ${m.session_open ? "open" : "closed"}`]);
  }
  if (c.replay) pairs.push(["Replay", `${c.replay.closed}/${c.replay.bar_times} bar times${c.replay.finished ? ", finished" : ""}`]);
  figures($("#control"), pairs);
  for (const button of document.querySelectorAll("#operator button[data-state]")) {
    button.setAttribute("aria-pressed", String(button.dataset.state === c.state));
  }
}

async function setControl(button) {
  const message = $("#control-message");
  button.disabled = true;
  try {
    const reply = await api("POST", "/v1/control", { state: button.dataset.state });
    showControl(reply);
    message.className = "ok";
    message.textContent = `The server is now ${reply.state}.`;
  } catch (error) {
    message.className = "error";
    message.textContent = `Not changed (${error.code}): ${error.message}`;
  } finally {
    button.disabled = false;
  }
}

async function loadUsers() {
  showUsers(await api("GET", "/v1/admin/users"));
}

function showUsers(users) {
  fillRows($("#users"), users, (u) => [
    cell(u.user_id), cell(u.name), cell(u.is_admin ? "admin" : "trader"), cell(u.initial_cash, "num"),
    cell(u.cash, "num"), cell(u.equity, "num"),
    u.is_admin ? cell("") : signed(percent(growth(dec(u.equity), capital(u)))),
  ]);
  for (const tr of $("#users tbody").children) tr.dataset.name = tr.children[1]?.textContent ?? "";
  $("#users-time").textContent = `As of ${new Date().toISOString().slice(11, 19)} UTC.`;
}

async function createUser(event) {
  event.preventDefault();
  const form = event.target;
  const message = $("#new-user-message");
  const name = form.name.value.trim();
  const cash = form.cash.value.trim();
  $("#new-token-box").hidden = true;
  $("#new-token").value = "";
  if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(name)) {
    message.className = "error";
    message.textContent = "A user name is 1 to 64 letters, digits or _ . @ -";
    return;
  }
  if (!positive(cash) || (decimal(cash).scale > 2)) {
    message.className = "error";
    message.textContent = "Starting cash must be a number above zero, at most 2 decimals.";
    return;
  }
  try {
    const created = await api("POST", "/v1/admin/users", { name, cash });
    message.className = "ok";
    message.textContent = `User ${created.name} (id ${created.user_id}) created with ${created.cash}. Copy the token now: it is not shown again.`;
    $("#new-token").value = created.token;
    $("#new-token-box").hidden = false;
    $("#new-token").select();
    form.name.value = "";
    await loadUsers();
  } catch (error) {
    message.className = "error";
    message.textContent = `Not created (${error.code}): ${error.message}`;
  }
}

async function loadBacktests() {
  const runs = await api("GET", "/v1/backtests");
  fillRows($("#backtests"), runs, (r) => {
    const view = document.createElement("button");
    view.type = "button";
    view.className = "quiet";
    view.textContent = "View";
    view.setAttribute("aria-label", `View backtest ${r.run_id}`);
    view.addEventListener("click", () => showReport(r.run_id));
    const actions = document.createElement("td");
    actions.append(view);
    return [
      cell(r.run_id), cell(r.name), cell(r.status), cell(r.bars ?? "", "num"), cell(r.trades ?? "", "num"),
      cell(r.final_equity ?? "", "num"), cell(r.total_return === null ? "" : percent(r.total_return), "num"),
      cell(r.max_drawdown === null ? "" : percent(r.max_drawdown), "num"), cell(r.sharpe ?? "", "num"), actions,
    ];
  });
}

async function showReport(runId) {
  const report = await api("GET", `/v1/backtests/${encodeURIComponent(runId)}`);
  const m = report.metrics || {};
  $("#report").hidden = false;
  $("#report-title").textContent = `Report of ${report.name || runId} (${report.status})`;
  const pct = (r) => (r === null || r === undefined ? null : percent(r));
  figures($("#report-figures"), [
    ["From", report.start && time(report.start)], ["To", report.end && time(report.end)],
    ["Bars", report.bars], ["Initial cash", m.initial_cash], ["Final equity", m.final_equity],
    ["Return", pct(m.total_return)], ["Annual return", pct(m.annual_return)],
    ["Max drawdown", pct(m.max_drawdown)], ["Sharpe", m.sharpe], ["Trades", m.trades],
    ["Round trips", m.round_trips], ["Win rate", pct(m.win_rate)], ["Fees", m.fees],
    ["Note", report.note || null],
  ]);
  const box = $("#report-chart");
  if (state.charts.report) state.charts.report.remove();
  state.charts.report = null;
  const curve = report.equity_curve || [];
  box.hidden = curve.length === 0;
  if (curve.length) {
    const chart = makeChart(box);
    chart.applyOptions({ timeScale: { timeVisible: false } });
    const series = chart.addSeries(window.LightweightCharts.LineSeries, { color: CHART_COLORS.line, lineWidth: 2 });
    const bySecond = new Map(curve.map((p) => [seconds(p.time), Number(p.equity)]));
    series.setData([...bySecond].map(([t, value]) => ({ time: t, value })));
    chart.timeScale().fitContent();
    box.dataset.points = String(bySecond.size);
    state.charts.report = chart;
  }
  const link = $("#report-html");
  link.href = `/v1/backtests/${encodeURIComponent(runId)}/report.html`;
  link.hidden = report.status === "running" || report.status === "failed";
  $("#report-title").focus();
}

// The processes' health each second and the users every five, pushed by GET /v1/admin/events.
function followAdmin() {
  if (state.health) state.health.close();
  const source = new EventSource("/v1/admin/events");
  state.health = source;
  source.onopen = () => { $("#health-live").textContent = "live."; };
  source.onerror = () => { $("#health-live").textContent = "reconnecting…"; };
  source.addEventListener("health", (event) => showHealth(JSON.parse(event.data).processes));
  source.addEventListener("users", (event) => showUsers(JSON.parse(event.data).users));
}

function showHealth(processes) {
  const total = (counts) => Object.values(counts || {}).reduce((a, b) => a + b, 0);
  const sent = (links) => Object.entries(links || {}).map(([to, seq]) => `${to} #${seq}`).join(", ");
  const received = (links) => Object.entries(links || {})
    .map(([from, l]) => `${from} #${l.seq}` + (l.gaps || l.lost ? ` (${l.gaps} gaps, ${l.lost} lost)` : ""))
    .join(", ");
  fillRows($("#processes"), processes, (p) => [
    cell(p.process),
    cell(p.up ? "up" : "down", p.up ? "up" : "down"),
    cell(p.pid, "num"), cell(p.restarts, "num"), cell(time(p.started)),
    cell(p.up ? total(p.inboxes) : "", "num"), cell(sent(p.sent)), cell(received(p.received)),
  ]);
  for (const tr of $("#processes tbody").children) tr.dataset.process = tr.children[0]?.textContent ?? "";
}

async function loadOperator() {
  followAdmin();
  try {
    const [control] = await Promise.all([api("GET", "/v1/control"), loadUsers(), loadBacktests()]);
    showControl(control);
  } catch (error) {
    if (error.status !== 401) console.error(error);
  }
}

function showView(name) {
  const operator = name === "operator";
  $("#operator").hidden = !operator;
  $("#trader").hidden = operator;
  $("#show-operator").setAttribute("aria-pressed", String(operator));
  $("#show-trader").setAttribute("aria-pressed", String(!operator));
}

// SIGN IN AND OUT -----------------------------------------------------------------------

function showSignIn(message = "") {
  closeEvents();
  state.book.clear();
  state.session = null;
  state.account = null;
  state.positions = new Map();
  state.fillsBefore = null;
  state.fillsNewest = null;
  state.historyAfter = 0;
  for (const chart of Object.values(state.charts)) if (chart && chart.remove) chart.remove();
  state.charts = {};
  state.equityLast = 0;
  for (const box of document.querySelectorAll(".chart")) delete box.dataset.points;
  $("#trader").hidden = true;
  $("#operator").hidden = true;
  $("#views").hidden = true;
  $("#new-token").value = "";
  $("#new-token-box").hidden = true;
  $("#report").hidden = true;
  $("#who").hidden = true;
  $("#sign-in").hidden = false;
  $("#sign-in-error").textContent = message;
  $("#token").focus();
}

async function showTrader(session) {
  state.session = session;
  $("#sign-in").hidden = true;
  $("#user-name").textContent = session.name + (session.is_admin ? " (admin)" : "");
  $("#key-id").textContent = session.key_id ? `key ${session.key_id}` : "";
  $("#who").hidden = false;
  $("#views").hidden = !session.is_admin;
  showView(session.is_admin ? "operator" : "trader");
  await loadSymbols();
  listen();
  await Promise.all([chooseChartSymbol(), refreshAll(), session.is_admin ? loadOperator() : null]);
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
  state.book = new BookPanel({ api, usePrice });
  $("#sign-in-form").addEventListener("submit", signIn);
  $("#sign-out").addEventListener("click", signOut);
  $("#ticket").addEventListener("submit", sendOrder);
  $("#ticket").addEventListener("change", showRules);
  $("#replace").addEventListener("submit", sendReplace);
  $("#replace-cancel").addEventListener("click", () => { $("#replace").hidden = true; });
  $("#reset-start").addEventListener("click", startReset);
  $("#reset-keep").addEventListener("click", () => { $("#reset-confirm").hidden = true; });
  $("#reset").addEventListener("submit", sendReset);
  $("#fills-more").addEventListener("click", (e) => whileDisabled(e.target, () => loadFills("older")));
  $("#history-more").addEventListener("click", (e) => whileDisabled(e.target, () => loadHistory("more")));
  $("#chart-symbol").addEventListener("change", chooseChartSymbol);
  $("#chart-style").addEventListener("change", drawPrice);
  $("#show-operator").addEventListener("click", () => showView("operator"));
  $("#show-trader").addEventListener("click", () => showView("trader"));
  for (const button of document.querySelectorAll("#operator button[data-state]")) {
    button.addEventListener("click", () => setControl(button));
  }
  $("#new-user").addEventListener("submit", createUser);
  $("#backtests-refresh").addEventListener("click", () => loadBacktests().catch(console.error));
  try {
    await showTrader(await api("GET", "/v1/session"));
  } catch {
    showSignIn();
  }
}

start();
