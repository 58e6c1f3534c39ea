#!/usr/bin/env node
// A TradeServer bot in JavaScript, written from docs/protocol.md alone (the section
// numbers below are that document's). It logs in on a DEALER socket, watches quotes on
// the SUB socket, buys and waits for the fill event, reads its account and positions,
// checks that bad orders are refused with the codes it expects, then rests an order and
// cancels it. Exit status 0 when every step went as expected, 1 otherwise.
//
//   node bot.mjs --token <token> [--api tcp://127.0.0.1:5555] [--pub tcp://127.0.0.1:5556]
//                [--symbol 600000] [--timeout 30]
// or set TRADESERVER_TOKEN, TRADESERVER_API, TRADESERVER_PUB.
import { parseArgs } from "node:util";
import { Decoder, Encoder } from "@msgpack/msgpack";
import { Dealer, Subscriber } from "zeromq";

// 1.4: `ts`, `last_close` and `next_ts` are nanoseconds, above 2^53. useBigInt64 turns
// msgpack's 64-bit integers into BigInt; a small value (last_close 0) still decodes as a
// number, so such a field is read with BigInt(value).
const decoder = new Decoder({ useBigInt64: true });
const encoder = new Encoder({ ignoreUndefined: true });

class TradeError extends Error {
  constructor(reply) {
    super(reply.message);
    this.code = reply.code; // stable (section 7); the message is for people
    this.retryAfter = reply.retry_after; // seconds, REQUEST_RATE_LIMITED only (2.8)
  }
}

/** Requests, replies and private events over one DEALER connection (2.1-2.6). */
class Client {
  constructor(endpoint, timeoutMs) {
    this.socket = new Dealer({ linger: 0 });
    this.socket.connect(endpoint);
    this.timeoutMs = timeoutMs;
    this.nextRid = 1;
    this.pending = new Map(); // rid -> resolve
    this.events = []; // private events not taken yet, in order
    this.eventWaiters = [];
    this.reading = this.read();
  }

  async read() {
    try {
      for await (const frames of this.socket) {
        const decoded = decoder.decode(frames[frames.length - 1]);
        for (const message of Array.isArray(decoded) ? decoded : [decoded]) {
          if (message.type === "event") {
            this.events.push(message);
            this.eventWaiters.splice(0).forEach((wake) => wake());
          } else {
            this.pending.get(message.rid)?.(message);
          }
        }
      }
    } catch (error) {
      if (!this.socket.closed) throw error;
    }
  }

  /** One request; its reply, or a TradeError for an error reply (2.3). */
  async request(type, fields = {}) {
    for (let attempt = 1; ; attempt++) {
      const reply = await this.send(type, fields);
      if (reply.type !== "error") return reply;
      const retry = { REQUEST_RATE_LIMITED: reply.retry_after, SYSTEM_BUSY: 0.5 }[reply.code];
      if (retry !== undefined && attempt < 5) {
        await sleep(retry * 1000); // nothing was done (2.8): wait and send it again
      } else if (reply.code === "AUTH_LOGIN_REQUIRED" && this.token && attempt < 2) {
        await this.login(this.token); // the session was forgotten (2.4)
      } else {
        throw new TradeError(reply);
      }
    }
  }

  async send(type, fields) {
    const rid = this.nextRid++;
    const reply = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(rid);
        reject(new Error(`no reply to ${type} within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.pending.set(rid, (message) => {
        clearTimeout(timer);
        this.pending.delete(rid);
        resolve(message);
      });
    });
    await this.socket.send(encoder.encode({ v: 1, type, rid, ...fields }));
    return reply;
  }

  async login(token) {
    this.token = token;
    return this.request("session.login", { token, events: true });
  }

  /** The first private event (5) that `matches`, taking those before it. */
  async nextEvent(matches, timeoutMs = this.timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const event = this.events.shift();
      if (event !== undefined) {
        if (matches(event)) return event;
        continue;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("no matching event in time");
      await new Promise((wake) => {
        const timer = setTimeout(wake, left);
        this.eventWaiters.push(() => (clearTimeout(timer), wake()));
      });
    }
  }

  close() {
    this.socket.close();
  }
}

/** The latest message of each topic on the public PUB socket (2.9). */
class Market {
  constructor(endpoint, topics) {
    this.socket = new Subscriber({ linger: 0 });
    this.socket.connect(endpoint);
    this.topics = topics;
    topics.forEach((topic) => this.socket.subscribe(topic));
    this.latest = new Map();
    this.reading = this.read();
  }

  async read() {
    try {
      for await (const [topic, payload] of this.socket) {
        const name = topic.toString();
        // ZeroMQ filters by prefix (md.60000 also matches md.600000): compare exactly
        if (this.topics.includes(name)) this.latest.set(name, decoder.decode(payload));
      }
    } catch (error) {
      if (!this.socket.closed) throw error;
    }
  }

  async first(topic, timeoutMs) {
    for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(20)) {
      if (this.latest.has(topic)) return this.latest.get(topic);
    }
    return undefined;
  }

  close() {
    this.socket.close();
  }
}

// Prices are decimal strings (1.3): do arithmetic on whole ticks, never on floats.
const decimals = (text) => (text.split(".")[1] ?? "").length;
const toUnits = (text, dp) => {
  const [whole, fraction = ""] = text.split(".");
  return BigInt(whole + fraction.padEnd(dp, "0"));
};
const fromUnits = (units, dp) => {
  const digits = units.toString().padStart(dp + 1, "0");
  return dp ? `${digits.slice(0, -dp)}.${digits.slice(-dp)}` : digits;
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (line) => console.log(line);

/** `percent` away from `last`, on the tick, and inside the day's band when there is one. */
function priceNear(last, percent, info) {
  const dp = decimals(info.tick_size);
  const tick = toUnits(info.tick_size, dp);
  let units = ((toUnits(last, dp) * BigInt(100 + percent)) / 100n / tick) * tick;
  if (info.limit_up !== null && units > toUnits(info.limit_up, dp)) units = toUnits(info.limit_up, dp);
  if (info.limit_down !== null && units < toUnits(info.limit_down, dp)) units = toUnits(info.limit_down, dp);
  return fromUnits(units, dp);
}

async function expectRefusal(client, code, fields) {
  try {
    const reply = await client.request("order.new", fields);
    throw new Error(`expected ${code}, but order ${reply.order.id} was accepted`);
  } catch (error) {
    if (!(error instanceof TradeError)) throw error;
    if (error.code !== code) throw new Error(`expected ${code}, got ${error.code}: ${error.message}`);
    log(`refused as expected: ${error.message}`);
  }
}

async function run({ api, pub, token, symbol, timeoutMs }) {
  const client = new Client(api, timeoutMs);
  const market = new Market(pub, [`md.${symbol}`, "ctl"]);
  try {
    const me = await client.login(token);
    log(`logged in as ${me.name} (user ${me.user_id}) at ${api}, fill mode ${me.fill_mode}`);

    const info = (await client.request("symbols.list")).symbols.find((s) => s.symbol === symbol);
    if (info === undefined) throw new Error(`the server has no symbol ${symbol}`);
    const band = info.limit_down === null ? "no daily limits" : `band ${info.limit_down}-${info.limit_up}`;
    log(`${symbol} ${info.name}: profile ${info.profile}, tick ${info.tick_size}, lot ${info.lot_size}, ${band}`);

    const control = (await market.first("ctl", 5000)) ?? (await client.request("control.get"));
    const lastClose = BigInt(control.last_close); // 0 (a number) or ns (a BigInt): 1.4
    log(`control: ${control.state}, trading ${control.trading}, ` +
      `last close ${lastClose === 0n ? "never (sessions always open)" : lastClose}`);
    let quote = await market.first(`md.${symbol}`, 5000);
    const source = quote === undefined ? "quote.get" : "SUB";
    quote ??= (await client.request("quote.get", { symbol })).quote;
    log(`last trade ${quote.last} at ${quote.time} (ts ${BigInt(quote.ts)} ns, from ${source})`);

    // A buy that fills: above the market, so a wait-mode trade reaches it (9.4).
    const price = priceNear(quote.last, 2, info);
    const qty = Number(info.lot_size);
    const { order } = await client.request("order.new", {
      symbol, side: "buy", qty, limit_price: price, client_order_id: `node-${Date.now()}`,
    });
    log(`buy ${qty} ${symbol} limit ${price}: order ${order.id} ${order.status}`);
    const filled = await client.nextEvent((e) => e.event === "order.filled" && e.order.id === order.id);
    const fill = filled.fill;
    log(`filled: ${fill.qty} at ${fill.price}, commission ${fill.commission}, event seq ${filled.seq}`);

    const { account } = await client.request("account.get");
    log(`account: cash ${account.cash}, available ${account.available_cash}, equity ${account.equity}`);
    const { positions } = await client.request("positions.list");
    const held = positions.find((p) => p.symbol === symbol);
    if (held === undefined) throw new Error(`no ${symbol} position after the fill`);
    log(`position: ${held.qty} ${symbol}, avg cost ${held.avg_cost}, unrealized ${held.unrealized_pnl}`);

    // Refusals come with a stable code: check the code, show the message.
    if (qty > 1) {
      await expectRefusal(client, "REQUEST_LOT_SIZE", { symbol, side: "buy", qty: qty + qty / 2, limit_price: price });
    }
    await expectRefusal(client, "REQUEST_INVALID", { symbol, side: "buy", qty: true, limit_price: price });
    await expectRefusal(client, "REQUEST_UNKNOWN_SYMBOL", { symbol: "NOPE", side: "buy", qty, limit_price: price });

    // An order that rests, then its cancel. In instant mode any limit fills at once at
    // its own price, so rest a buy stop above the market there; else a limit below it.
    const resting = me.fill_mode === "instant"
      ? { order_type: "stop", stop_price: priceNear(quote.last, 8, info) }
      : { limit_price: priceNear(quote.last, -8, info) };
    const placed = (await client.request("order.new", { symbol, side: "buy", qty, ...resting })).order;
    const at = placed.stop_price ?? placed.limit_price;
    log(`resting ${placed.type} buy ${qty} at ${at}: order ${placed.id} ${placed.status}`);
    const canceled = (await client.request("order.cancel", { order_id: placed.id })).order;
    if (canceled.status !== "canceled") throw new Error(`cancel left order ${placed.id} ${canceled.status}`);
    const after = await client.nextEvent((e) => e.event === "order.canceled" && e.order.id === placed.id);
    log(`canceled order ${placed.id}: reserved cash now ${after.account.reserved_cash}`);
    try {
      await client.request("order.cancel", { order_id: placed.id });
      throw new Error("a second cancel was accepted");
    } catch (error) {
      if (error.code !== "REQUEST_ORDER_NOT_OPEN") throw error;
      log(`cancel again: ${error.code}, as expected`);
    }
  } finally {
    client.close();
    market.close();
  }
}

const { values } = parseArgs({
  options: {
    api: { type: "string", default: process.env.TRADESERVER_API ?? "tcp://127.0.0.1:5555" },
    pub: { type: "string", default: process.env.TRADESERVER_PUB ?? "tcp://127.0.0.1:5556" },
    token: { type: "string", default: process.env.TRADESERVER_TOKEN },
    symbol: { type: "string", default: "600000" },
    timeout: { type: "string", default: "30" },
  },
});
if (!values.token) {
  console.error("give the token: --token or TRADESERVER_TOKEN");
  process.exit(2);
}
try {
  await run({ ...values, timeoutMs: Number(values.timeout) * 1000 });
  log("done");
  process.exit(0);
} catch (error) {
  console.error(`FAILED: ${error.code ? `${error.code}: ` : ""}${error.message}`);
  process.exit(1);
}
