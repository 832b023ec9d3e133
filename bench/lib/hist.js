'use strict';
// Log-bucketed latency histogram: constant memory, ~1% relative error, values in milliseconds.
// Buckets grow by 1% from 1 µs, so 2,200 buckets reach ~50 minutes.

const BASE = 1.01;
const LOG_BASE = Math.log(BASE);
const BUCKETS = 2200;

class Hist {
  constructor() {
    this.counts = new Float64Array(BUCKETS);
    this.n = 0;
    this.sum = 0;
    this.max = 0;
  }

  record(ms) {
    const us = ms * 1000;
    let i = us <= 1 ? 0 : Math.ceil(Math.log(us) / LOG_BASE);
    if (i >= BUCKETS) i = BUCKETS - 1;
    this.counts[i]++;
    this.n++;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
  }

  merge(other) {
    for (let i = 0; i < BUCKETS; i++) this.counts[i] += other.counts[i];
    this.n += other.n;
    this.sum += other.sum;
    if (other.max > this.max) this.max = other.max;
    return this;
  }

  /** p in [0, 100]; the upper bound of the bucket holding the p-th percentile, in ms */
  percentile(p) {
    if (this.n === 0) return null;
    const target = Math.max(1, Math.ceil((p / 100) * this.n));
    let acc = 0;
    for (let i = 0; i < BUCKETS; i++) {
      acc += this.counts[i];
      if (acc >= target) return Math.min(Math.pow(BASE, i) / 1000, this.max);
    }
    return this.max;
  }

  summary() {
    if (this.n === 0) return { n: 0 };
    return {
      n: this.n,
      mean: this.sum / this.n,
      p50: this.percentile(50),
      p99: this.percentile(99),
      p999: this.percentile(99.9),
      max: this.max,
    };
  }
}

/** percentiles of a plain array of numbers (exact) */
function exactSummary(values) {
  if (values.length === 0) return { n: 0 };
  const s = Float64Array.from(values).sort();
  const at = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
  let sum = 0;
  for (const v of s) sum += v;
  return { n: s.length, mean: sum / s.length, p50: at(50), p99: at(99), p999: at(99.9), max: s[s.length - 1] };
}

module.exports = { Hist, exactSummary };
