'use strict';
// Figures, ratios against bare aedes, targets and the printed table.
//
// A figure: { id, scenario, label, unit, better: 'higher'|'lower'|null, values: {column: n},
//   target?: { type: 'ratio', op, value } (value / bare aedes, for the service columns)
//          | { type: 'abs', op, value, text } (the service columns' own value)
//          | { type: 'check', pass: {column: bool}, text } (computed by the scenario)
//   pairedRatios?: {column: n} (the scenario's own ratio to bare aedes, used instead of
//          value / aedes value: the median of per-cycle ratios of interleaved repetitions)
//   note? }

const SERVICE = new Set(['service', 'service-pg']);

function cmp(op, a, b) {
  switch (op) {
    case '>=': return a >= b;
    case '>': return a > b;
    case '<=': return a <= b;
    case '<': return a < b;
    case '==': return a === b;
    default: throw new Error(`bad op ${op}`);
  }
}

/** adds ratios (column / aedes) and verdicts (service columns) to a figure */
function evaluate(fig) {
  const base = fig.values.aedes;
  fig.ratios = {};
  for (const [col, v] of Object.entries(fig.values)) {
    if (col === 'aedes' || v === null || v === undefined || fig.noRatio) continue;
    if (fig.pairedRatios) {
      if (typeof fig.pairedRatios[col] === 'number') fig.ratios[col] = fig.pairedRatios[col];
    } else if (typeof base === 'number' && base !== 0 && typeof v === 'number') fig.ratios[col] = v / base;
  }
  fig.verdicts = {};
  const t = fig.target;
  if (!t) return fig;
  for (const col of Object.keys(fig.values)) {
    if (!SERVICE.has(col)) continue;
    const v = fig.values[col];
    if (t.type === 'check') {
      if (t.pass && col in t.pass) fig.verdicts[col] = t.pass[col] === null || t.pass[col] === undefined ? 'n/a' : t.pass[col] ? 'pass' : 'MISS';
    } else if (typeof v !== 'number' || Number.isNaN(v)) {
      fig.verdicts[col] = 'n/a';
    } else if (t.type === 'ratio') {
      const r = fig.ratios[col];
      fig.verdicts[col] = typeof r === 'number' ? (cmp(t.op, r, t.value) ? 'pass' : 'MISS') : 'n/a';
    } else if (t.type === 'abs') {
      fig.verdicts[col] = cmp(t.op, v, t.value) ? 'pass' : 'MISS';
    }
  }
  return fig;
}

function targetText(t) {
  if (!t) return '';
  if (t.text) return t.text;
  if (t.type === 'ratio') return `${t.op} ${t.value}x aedes`;
  if (t.type === 'abs') return `${t.op} ${t.value}`;
  return '';
}

function fmtNum(v, unit) {
  if (v === null || v === undefined) return '-';
  if (typeof v === 'string') return v;
  if (Number.isNaN(v)) return 'NaN';
  if (unit === 'ms') return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toFixed(3);
  if (unit === 'B') {
    if (Math.abs(v) >= 1 << 30) return `${(v / (1 << 30)).toFixed(2)}G`;
    if (Math.abs(v) >= 1 << 20) return `${(v / (1 << 20)).toFixed(1)}M`;
    if (Math.abs(v) >= 1024) return `${(v / 1024).toFixed(1)}K`;
    return v.toFixed(0);
  }
  if (unit === 'x' || unit === '%' || unit === 'us') return v.toFixed(2);
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e6).toFixed(2)}M`;
  if (a >= 1e4) return `${(v / 1e3).toFixed(1)}k`;
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

function pad(s, n, right = false) {
  s = String(s);
  if (s.length >= n) return s;
  return right ? s + ' '.repeat(n - s.length) : ' '.repeat(n - s.length) + s;
}

/** the text table: one row per figure, a value and a ratio per column */
function table(figures, columns) {
  const cols = columns.filter((c) => figures.some((f) => f.values[c] !== undefined));
  const head = ['figure', 'unit', ...cols.flatMap((c) => (c === 'aedes' ? [c] : [c, 'x'])), 'target', 'verdict'];
  const rows = [];
  let lastScenario = null;
  for (const f of figures) {
    if (f.scenario !== lastScenario) {
      rows.push({ section: f.scenario });
      lastScenario = f.scenario;
    }
    const cells = [f.label, f.unit === 'count' ? '' : f.unit || ''];
    for (const c of cols) {
      cells.push(fmtNum(f.values[c], f.unit));
      if (c !== 'aedes') cells.push(f.ratios && f.ratios[c] !== undefined ? f.ratios[c].toFixed(2) : '');
    }
    cells.push(targetText(f.target));
    cells.push(Object.entries(f.verdicts || {}).map(([c, v]) => (Object.keys(f.verdicts).length > 1 ? `${c === 'service' ? 'lite' : 'pg'}:${v}` : v)).join(' '));
    rows.push(cells);
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.filter(Array.isArray).map((r) => String(r[i]).length)));
  const line = (cells) => cells.map((c, i) => pad(c, widths[i], i === 0 || i >= cells.length - 2)).join('  ');
  const out = [line(head), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const r of rows) out.push(Array.isArray(r) ? line(r) : `[${r.section}]`);
  return out.join('\n');
}

function median(xs) {
  const v = xs.filter((x) => typeof x === 'number' && !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** least-squares slope of (t, y) pairs, per unit of t */
function slope(points) {
  const n = points.length;
  if (n < 3) return null;
  let sx = 0;
  let sy = 0;
  let sxx = 0;
  let sxy = 0;
  for (const [x, y] of points) {
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
  }
  const d = n * sxx - sx * sx;
  return d === 0 ? null : (n * sxy - sx * sy) / d;
}

module.exports = { evaluate, table, median, slope, fmtNum, SERVICE };
