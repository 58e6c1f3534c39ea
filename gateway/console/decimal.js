// Exact decimals for the web console, as BigInt units and a scale: never binary floats.
// Unsigned ones for the client-side checks of the order ticket (the server decides);
// signed ones for live valuation and the order book, rounded as the server rounds.

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

// Signed exact decimals for live valuation, rounded as the server rounds (half up, money
// to 8 places shown with 2 when whole cents: protocol/values.py). Never binary floats.
function dec(text) {
  const match = /^(-?)(\d+)(?:\.(\d+))?$/.exec(String(text).trim());
  if (!match) return null;
  const fraction = match[3] || "";
  const units = BigInt(match[2] + fraction);
  return { units: match[1] ? -units : units, scale: fraction.length };
}

const scaled = (a, scale) => a.units * 10n ** BigInt(scale - a.scale);
const ZERO = { units: 0n, scale: 0 };

function add(a, b) {
  const scale = Math.max(a.scale, b.scale);
  return { units: scaled(a, scale) + scaled(b, scale), scale };
}

const sub = (a, b) => add(a, { units: -b.units, scale: b.scale });
const mul = (a, b) => ({ units: a.units * b.units, scale: a.scale + b.scale });

function halfUp(numerator, denominator) {
  // numerator / denominator (denominator > 0), rounded half away from zero
  const negative = numerator < 0n;
  const n = negative ? -numerator : numerator;
  let q = n / denominator;
  if ((n % denominator) * 2n >= denominator) q += 1n;
  return negative ? -q : q;
}

function round(a, scale) {
  if (a.scale <= scale) return { units: scaled(a, scale), scale };
  return { units: halfUp(a.units, 10n ** BigInt(a.scale - scale)), scale };
}

function text(a) {
  const negative = a.units < 0n;
  const digits = (negative ? -a.units : a.units).toString().padStart(a.scale + 1, "0");
  const whole = digits.slice(0, digits.length - a.scale);
  return (negative ? "-" : "") + whole + (a.scale ? "." + digits.slice(digits.length - a.scale) : "");
}

function money(a) {
  const exact = round(a, 8);
  const cents = round(exact, 2);
  return scaled(cents, 8) === exact.units ? text(cents) : text(exact).replace(/0+$/, "");
}

// value / base - 1 to six places, half up; "0.000000" without a base (the admin's)
function growth(value, base) {
  if (base.units === 0n) return "0.000000";
  const scale = Math.max(value.scale, base.scale);
  const units = halfUp((scaled(value, scale) - scaled(base, scale)) * 1000000n, scaled(base, scale));
  return text({ units, scale: 6 });
}

// -1, 0 or 1 as a is below, equal to or above b (signed decimals)
function compare(a, b) {
  const scale = Math.max(a.scale, b.scale);
  const d = scaled(a, scale) - scaled(b, scale);
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}

export { add, compare, dec, decimal, growth, isMultiple, money, mul, positive, sub, text, ZERO };
