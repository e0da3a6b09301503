/**
 * The callers a simulation replays: when each arrives and how long it holds
 * its lease once granted. Either Poisson arrivals (exponential gaps at a rate)
 * with exponential or fixed holds, seeded; or a trace file of
 * `arrival_s,hold_s` lines (a header line is allowed), replayed as written.
 */
import { type Distribution, sampler, uniform } from "./random";

export interface Arrival {
  /** Seconds after the simulation's first arrival window opens. */
  atSeconds: number;
  holdSeconds: number;
}

export type ArrivalSource =
  | {
      kind: "poisson";
      /** Mean arrivals per second. */
      rate: number;
      /** Mean hold, in seconds. */
      holdSeconds: number;
      holdDist: Distribution;
      /** Arrivals stop at this time, or after `count` arrivals, whichever comes first (at least one must be given). */
      durationSeconds?: number;
      count?: number;
      seed: number;
    }
  | { kind: "trace"; csv: string };

/** The arrivals of a source, in time order, lazily (a long Poisson run is never held in memory twice). */
export function* arrivalsOf(source: ArrivalSource): Generator<Arrival> {
  if (source.kind === "trace") {
    yield* parseTrace(source.csv);
    return;
  }
  if (source.durationSeconds === undefined && source.count === undefined) throw new Error("a Poisson source needs a duration or a count");
  if (!(source.rate > 0)) throw new Error("the arrival rate must be positive");
  // Two streams: the holds do not shift when the gaps are drawn differently.
  const gap = sampler(uniform(source.seed), 1 / source.rate, "exp");
  const hold = sampler(uniform(source.seed ^ 0x5bd1e995), source.holdSeconds, source.holdDist);
  let at = 0;
  for (let n = 0; source.count === undefined || n < source.count; n += 1) {
    at += gap();
    if (source.durationSeconds !== undefined && at > source.durationSeconds) return;
    yield { atSeconds: at, holdSeconds: hold() };
  }
}

/** `arrival_s,hold_s` per line; a first line that is not numbers is a header; blank lines and `#` comments are skipped. */
export function parseTrace(csv: string): Arrival[] {
  const arrivals: Arrival[] = [];
  let first = true;
  csv.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const isFirst = first;
    first = false;
    const cells = line.split(",").map((cell) => cell.trim());
    const [atSeconds, holdSeconds] = cells.map(Number) as [number, number];
    if (cells.length !== 2 || cells.includes("") || !Number.isFinite(atSeconds) || !Number.isFinite(holdSeconds)) {
      if (isFirst) return; // the header
      throw new Error(`trace line ${index + 1}: expected "arrival_s,hold_s", got "${line}"`);
    }
    if (atSeconds < 0 || holdSeconds < 0) throw new Error(`trace line ${index + 1}: times must not be negative`);
    if (arrivals.length > 0 && atSeconds < arrivals[arrivals.length - 1]!.atSeconds) {
      throw new Error(`trace line ${index + 1}: arrivals must be in time order`);
    }
    arrivals.push({ atSeconds, holdSeconds });
  });
  return arrivals;
}
