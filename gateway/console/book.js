// The order book and the trade tape of the charted symbol, when it trades in exchange mode
// (docs/protocol.md 9.7): a depth ladder rebuilt from a GET /v1/depth snapshot and the
// numbered depth events of the market stream, and the latest trades from its quote events.
// app.js owns the stream and hands this module what comes; a paper-mode symbol (GET
// /v1/depth answers 409 REQUEST_NOT_EXCHANGE) shows neither, only a line that says why.

import { add, compare, dec, sub, text } from "./decimal.js";

export const LADDER_LEVELS = 10; // shown on each side
// asked for: beyond the levels a snapshot holds, the changes tell only what moved (9.7)
const SNAPSHOT_LEVELS = 50;
const TAPE_ROWS = 50;
const MAX_KEPT = 5000; // depth events kept while a snapshot is on its way
const RETRY_MS = 2000; // after a snapshot that failed for want of the server

const SIDES = ["bids", "asks"];
const isZero = (qty) => dec(qty).units === 0n;
// sort order of each side's prices: best first
const BEST_FIRST = {
  bids: (a, b) => compare(dec(b), dec(a)),
  asks: (a, b) => compare(dec(a), dec(b)),
};

function change(levels, changed) {
  for (const [price, qty] of changed) {
    if (isZero(qty)) levels.delete(price);
    else levels.set(price, qty);
  }
}

// BOOK (plain: no page, no network) -------------------------------------------------------

// One symbol's price levels, kept by the client algorithm of protocol.md 9.7: depth events
// are kept from when the stream is open until the snapshot asked after it is in; those
// after the snapshot's seq are applied, then each as it comes. Its caller asks for a new
// snapshot whenever `take` or `load` says so.
export class DepthBook {
  constructor(symbol) {
    this.symbol = symbol;
    this.bids = new Map(); // price -> qty, decimal strings as the server writes them
    this.asks = new Map();
    this.seq = 0; // the last depth event in the book
    this.live = false; // a snapshot is in, and the events after it applied
    this.kept = []; // depth events that came while a snapshot was on its way
    this.edge = { bids: null, asks: null }; // the last level of a side a snapshot cut off
    this.last = null; // the last trade's price
  }

  // A snapshot will be asked for: keep the events from now until it is in.
  begin() {
    this.live = false;
  }

  // GET /v1/depth's reply, asked with `levels` after the stream opened. False when the
  // kept events show that some were missed: ask again.
  load(depth, levels) {
    this.bids = new Map(depth.bids);
    this.asks = new Map(depth.asks);
    for (const side of SIDES) {
      const held = depth[side];
      this.edge[side] = held.length >= levels ? held[held.length - 1][0] : null;
    }
    this.seq = depth.seq;
    this.last = depth.last ?? this.last;
    this.live = true;
    const kept = this.kept;
    this.kept = [];
    for (const message of kept) {
      if (message.seq > this.seq && this.take(message) === "resync") return false;
    }
    return true;
  }

  // A depth event: "kept" (a snapshot is on its way), "old" (in the book already),
  // "applied", or "resync": a gap in the numbers, or fewer levels known than the ladder
  // shows; the book keeps the events from here until a new snapshot is loaded.
  take(message) {
    if (!this.live) {
      this.kept.push(message);
      if (this.kept.length > MAX_KEPT) this.kept.shift(); // a gap then, if it mattered
      return "kept";
    }
    if (message.seq <= this.seq) return "old";
    if (message.reset) { // the whole book, after a gap too
      this.bids = new Map(message.bids.filter(([, qty]) => !isZero(qty)));
      this.asks = new Map(message.asks.filter(([, qty]) => !isZero(qty)));
      this.edge = { bids: null, asks: null };
    } else if (message.seq !== this.seq + 1) {
      this.begin();
      this.kept.push(message);
      return "resync";
    } else {
      change(this.bids, message.bids);
      change(this.asks, message.asks);
    }
    this.seq = message.seq;
    if (this.thin()) {
      this.begin();
      return "resync";
    }
    return "applied";
  }

  // A side the snapshot cut off with fewer levels than the ladder shows up to that cut:
  // past it, only the levels that changed since are known.
  thin() {
    return SIDES.some((side) => {
      const edge = this.edge[side];
      if (edge === null) return false;
      let within = 0;
      for (const price of this[side].keys()) if (BEST_FIRST[side](price, edge) <= 0) within += 1;
      return within < LADDER_LEVELS;
    });
  }

  // The best `n` levels of a side, best first, each [price, qty, total qty up to it].
  top(side, n) {
    const levels = [...this[side]].sort((a, b) => BEST_FIRST[side](a[0], b[0])).slice(0, n);
    let total = dec("0");
    return levels.map(([price, qty]) => {
      total = add(total, dec(qty));
      return [price, qty, text(total)];
    });
  }
}

// ON THE PAGE -----------------------------------------------------------------------------

const $ = (selector) => document.querySelector(selector);

function td(content, className) {
  const cell = document.createElement("td");
  cell.textContent = content ?? "";
  if (className) cell.className = className;
  return cell;
}

// The ladder's and the tape's elements in index.html, for the charted symbol. `api` is
// app.js's request function; `usePrice(symbol, price)` is told when a level is clicked.
export class BookPanel {
  constructor({ api, usePrice }) {
    this.api = api;
    this.modes = new Map(); // symbol -> "exchange" or "paper", as GET /v1/depth told
    this.trades = new Map(); // symbol -> its latest trades, newest first
    this.book = null; // the charted symbol's DepthBook
    this.asked = 0; // snapshots asked for: only the reply to the latest counts
    this.retry = null;
    this.drawing = false;
    this.rows = { asks: [], bids: [] }; // LADDER_LEVELS rows a side, made once
    for (const side of SIDES) {
      for (let i = 0; i < LADDER_LEVELS; i += 1) this.rows[side].push(this.levelRow(side, usePrice));
    }
    // the asks read upwards from the spread: the best is the lowest row
    $("#asks").replaceChildren(...[...this.rows.asks].reverse());
    $("#bids").replaceChildren(...this.rows.bids);
  }

  levelRow(side, usePrice) {
    const tr = document.createElement("tr");
    tr.className = `level ${side === "asks" ? "ask" : "bid"} empty`;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "price";
    button.addEventListener("click", () => usePrice(this.book.symbol, tr.dataset.price));
    const price = td(null);
    price.append(button);
    tr.append(price, td(null, "num qty"), td(null, "num total"));
    return tr;
  }

  // The chart now shows `symbol`; `streaming`: the market stream carrying it is open.
  show(symbol, streaming) {
    if (this.book?.symbol !== symbol) {
      this.book = new DepthBook(symbol);
      this.book.last = this.trades.get(symbol)?.[0]?.price ?? null;
      this.asked += 1; // a reply for the symbol before is of no use
      this.drawSoon();
    }
    this.showMode();
    if (streaming) this.snapshot();
  }

  // The market stream with these symbols (empty: all) opened, or opened again after a
  // break: the events of the break are lost.
  streamOpened(symbols) {
    if (this.book && (!symbols.length || symbols.includes(this.book.symbol))) this.snapshot();
  }

  depth(message) {
    if (message.symbol !== this.book?.symbol) return;
    const outcome = this.book.take(message);
    if (outcome === "applied") this.drawSoon();
    else if (outcome === "resync") this.snapshot();
  }

  quote(message) {
    if (dec(String(message.volume)).units <= 0n) return; // a price repeated, not a trade
    let trades = this.trades.get(message.symbol);
    if (!trades) this.trades.set(message.symbol, (trades = []));
    trades.unshift({ time: message.time, price: message.last, qty: String(message.volume), side: message.taker_side });
    if (trades.length > TAPE_ROWS) trades.length = TAPE_ROWS;
    if (message.symbol === this.book?.symbol) {
      this.book.last = message.last;
      this.drawSoon();
    }
  }

  // Signed out: nothing of it stays on the page.
  clear() {
    this.book = null;
    this.asked += 1;
    clearTimeout(this.retry);
    this.trades = new Map();
    this.showMode();
  }

  async snapshot() {
    const book = this.book;
    if (!book || this.modes.get(book.symbol) === "paper") return;
    clearTimeout(this.retry);
    book.begin();
    this.drawSoon();
    const asked = (this.asked += 1);
    const current = () => asked === this.asked && book === this.book;
    let depth;
    try {
      depth = await this.api("GET", `/v1/depth/${encodeURIComponent(book.symbol)}?levels=${SNAPSHOT_LEVELS}`);
    } catch (error) {
      if (!current()) return;
      if (error.code === "REQUEST_NOT_EXCHANGE") {
        this.modes.set(book.symbol, "paper");
        this.showMode();
      } else if (error.status === undefined || error.status === 429 || error.status >= 500) {
        this.retry = setTimeout(() => current() && this.snapshot(), RETRY_MS);
      }
      return;
    }
    if (!current()) return; // a later snapshot is on its way
    this.modes.set(book.symbol, "exchange");
    this.showMode();
    if (book.load(depth, SNAPSHOT_LEVELS)) this.drawSoon();
    else this.snapshot();
  }

  showMode() {
    const symbol = this.book?.symbol;
    const mode = symbol && this.modes.get(symbol);
    $("#book").hidden = mode !== "exchange";
    $("#tape").hidden = mode !== "exchange";
    $(".charts").classList.toggle("with-book", mode === "exchange");
    const note = $("#paper-note");
    note.hidden = mode !== "paper";
    note.textContent = mode === "paper"
      ? `${symbol} is in paper mode: its orders fill against the market feed, so it has no order book or trade tape here.`
      : "";
  }

  // RENDERING: once a frame at most, however fast the events come

  drawSoon() {
    if (this.drawing) return;
    this.drawing = true;
    requestAnimationFrame(() => {
      this.drawing = false;
      if (this.book && this.modes.get(this.book.symbol) === "exchange") this.draw();
    });
  }

  draw() {
    const book = this.book;
    const levels = { asks: book.top("asks", LADDER_LEVELS), bids: book.top("bids", LADDER_LEVELS) };
    const depth = (side) => Number(levels[side].at(-1)?.[2] ?? 0); // bar widths only
    const deepest = Math.max(depth("asks"), depth("bids"), 1e-12);
    for (const side of SIDES) {
      this.rows[side].forEach((tr, i) => showLevel(tr, levels[side][i], deepest, i === 0));
    }
    const [bid, ask] = [levels.bids[0]?.[0], levels.asks[0]?.[0]];
    const last = book.last ? ` · last ${book.last}` : "";
    let spread = "No orders in the book";
    if (bid && ask) spread = `Spread ${text(sub(dec(ask), dec(bid)))}`;
    else if (bid || ask) spread = bid ? "No asks" : "No bids";
    $("#spread td").textContent = spread + last;
    const ladder = $("#ladder");
    ladder.setAttribute("aria-busy", String(!book.live));
    ladder.dataset.seq = String(book.seq);
    $("#book-status").textContent = book.live ? `Live to depth event ${book.seq}.` : "Catching up…";
    this.drawTape(book.symbol);
  }

  drawTape(symbol) {
    const trades = this.trades.get(symbol) ?? [];
    const rows = trades.map((t) => {
      const tr = document.createElement("tr");
      tr.dataset.price = t.price;
      tr.dataset.qty = t.qty;
      tr.append(td(t.time.slice(11, 19)), td(t.price, `num ${t.side ?? ""}`), td(t.qty, "num"), td(t.side, t.side));
      return tr;
    });
    if (!rows.length) {
      const tr = document.createElement("tr");
      const cell = td("No trades since this page opened.", "hint");
      cell.colSpan = 4;
      tr.append(cell);
      rows.push(tr);
    }
    $("#trades tbody").replaceChildren(...rows);
  }
}

function showLevel(tr, level, deepest, best) {
  tr.classList.toggle("empty", !level);
  tr.classList.toggle("best", Boolean(level) && best);
  const [price, qty, total] = level ?? ["", "", ""];
  const button = tr.firstChild.firstChild;
  button.textContent = price;
  const side = tr.classList.contains("ask") ? "offered" : "bid";
  button.setAttribute("aria-label", level ? `${price}, ${qty} ${side}: use this price in the order form` : "");
  tr.children[1].textContent = qty;
  tr.children[2].textContent = total;
  tr.dataset.price = price;
  tr.dataset.qty = qty;
  tr.style.setProperty("--depth", level ? `${((100 * Number(total)) / deepest).toFixed(1)}%` : "0%");
}
