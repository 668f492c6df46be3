"use strict";
// Small statistics helpers shared by the bench processes: a latency reservoir,
// percentiles, medians with min–max over rounds, and number formatting.

/** Fixed-size uniform reservoir of samples (bounded memory whatever the run length). */
class Reservoir {
  constructor(capacity = 1 << 17) {
    this.values = new Float64Array(capacity);
    this.capacity = capacity;
    this.seen = 0;
  }

  add(v) {
    const i = this.seen++;
    if (i < this.capacity) this.values[i] = v;
    else {
      const j = Math.floor(Math.random() * (i + 1));
      if (j < this.capacity) this.values[j] = v;
    }
  }

  reset() {
    this.seen = 0;
  }

  /** { n, p50, p99, max } in the unit the samples were added in. */
  summary() {
    const n = Math.min(this.seen, this.capacity);
    if (n === 0) return { n: 0, p50: null, p99: null, max: null };
    const sorted = this.values.slice(0, n).sort();
    return {
      n: this.seen,
      p50: percentileSorted(sorted, 0.5),
      p99: percentileSorted(sorted, 0.99),
      max: sorted[n - 1],
    };
  }
}

function percentileSorted(sorted, p) {
  if (sorted.length === 0) return null;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[idx];
}

/** Median and range of a list of numbers (nulls ignored); null when empty. */
function spread(values) {
  const v = values.filter((x) => typeof x === "number" && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { median, min: v[0], max: v[v.length - 1], n: v.length };
}

/** Monotonic clock in microseconds (CLOCK_MONOTONIC: comparable across processes). */
function nowUs() {
  return Number(process.hrtime.bigint() / 1000n);
}

function fmtNum(x, digits) {
  if (x === null || x === undefined || !Number.isFinite(x)) return "–";
  const abs = Math.abs(x);
  if (digits === undefined) digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  if (abs >= 1e6) return (x / 1e6).toFixed(2) + "M";
  if (abs >= 1e4) return (x / 1e3).toFixed(1) + "k";
  return x.toFixed(digits);
}

/** "median [min–max]" or just the median when every round gave the same value. */
function fmtSpread(s, digits) {
  if (!s) return "–";
  const m = fmtNum(s.median, digits);
  if (s.n < 2) return m;
  const lo = fmtNum(s.min, digits);
  const hi = fmtNum(s.max, digits);
  return lo === hi ? m : `${m} [${lo}–${hi}]`;
}

function fmtRatio(r) {
  if (r === null || r === undefined || !Number.isFinite(r)) return "–";
  return r >= 10 ? `${r.toFixed(1)}×` : `${r.toFixed(2)}×`;
}

function fmtMiB(bytes) {
  if (!Number.isFinite(bytes)) return "–";
  return (bytes / 1048576).toFixed(1);
}

module.exports = {
  Reservoir,
  percentileSorted,
  spread,
  nowUs,
  fmtNum,
  fmtSpread,
  fmtRatio,
  fmtMiB,
};
