/**
 * The pool's own metrics, kept in its SQLite next to the rows they describe
 * and written by the transitions that cause them (so they are exactly as
 * durable and as atomic as the state). `GET /metrics` renders them in the
 * Prometheus text format (src/api/metrics.ts).
 *
 * Cheap on the hot path: a grant writes one histogram row (queue wait) and a
 * lease's end one (lease duration); `acquires_total{outcome="granted"}` and
 * `releases_total` are those histograms' counts, not separate counters.
 */

export const HISTOGRAMS = {
  queue_wait_seconds: [0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60],
  launch_duration_seconds: [0.25, 0.5, 1, 2, 5, 10, 30, 60, 120],
  lease_duration_seconds: [1, 5, 15, 60, 300, 900, 1800, 3600],
} as const;

export type HistogramName = keyof typeof HISTOGRAMS;
export type CounterName = "acquire_failures" | "launch_failures" | "launch_deferred" | "breaker_opened" | "governor_fallback";

export interface HistogramSnapshot {
  name: HistogramName;
  labels: Record<string, string>;
  /** Cumulative counts per upper bound, ending with "+Inf". */
  buckets: { le: string; count: number }[];
  sum: number;
  count: number;
}

export interface CounterSnapshot {
  name: CounterName;
  labels: Record<string, string>;
  value: number;
}

/** Acquires granted: every grant observes its queue wait once, so this is that histogram's count. */
export function grantedTotal(histograms: HistogramSnapshot[]): number {
  return histograms.filter((h) => h.name === "queue_wait_seconds").reduce((sum, h) => sum + h.count, 0);
}

/** The bucket an observation falls in: its upper bound as text, "+Inf" beyond the last. */
export function bucketOf(name: HistogramName, seconds: number): string {
  const bound = HISTOGRAMS[name].find((le) => seconds <= le);
  return bound === undefined ? "+Inf" : String(bound);
}

/** Labels as stored: a canonical JSON object (sorted keys). */
export function labelKey(labels: Record<string, string>): string {
  return JSON.stringify(Object.fromEntries(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1))));
}

/** Rebuilds cumulative histograms from the stored per-bucket rows. */
export function histogramSnapshots(rows: { name: string; labels: string; le: string; n: number; sum: number }[]): HistogramSnapshot[] {
  const byKey = new Map<string, { name: HistogramName; labels: string; perBucket: Map<string, number>; sum: number }>();
  for (const row of rows) {
    if (!(row.name in HISTOGRAMS)) continue;
    const key = `${row.name} ${row.labels}`;
    const entry = byKey.get(key) ?? { name: row.name as HistogramName, labels: row.labels, perBucket: new Map(), sum: 0 };
    entry.perBucket.set(row.le, (entry.perBucket.get(row.le) ?? 0) + row.n);
    entry.sum += row.sum;
    byKey.set(key, entry);
  }
  return [...byKey.values()].map((entry) => {
    let running = 0;
    const buckets = [...HISTOGRAMS[entry.name].map(String), "+Inf"].map((le) => {
      running += entry.perBucket.get(le) ?? 0;
      return { le, count: running };
    });
    return { name: entry.name, labels: JSON.parse(entry.labels) as Record<string, string>, buckets, sum: entry.sum, count: running };
  });
}
