/** A parsed Prometheus text exposition: `value('mqtt_connections', { tenant: 'a' })`. */
export interface Scrape {
  text: string;
  /** the sample whose labels include all of `labels`; undefined when there is none */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** every sample of a metric name */
  samples(name: string): { labels: Record<string, string>; value: number }[];
}

export function parsePrometheus(text: string): Scrape {
  const samples = new Map<string, { labels: Record<string, string>; value: number }[]>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    const list = samples.get(m[1]) ?? [];
    list.push({ labels, value: Number(m[3]) });
    samples.set(m[1], list);
  }
  return {
    text,
    samples: (name) => samples.get(name) ?? [],
    value(name, want = {}) {
      const hit = (samples.get(name) ?? []).find((s) => Object.entries(want).every(([k, v]) => s.labels[k] === v));
      return hit?.value;
    },
  };
}
