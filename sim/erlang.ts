/**
 * The M/M/c queue's known answers (Erlang C), to size a pool on paper and to
 * check the simulator against: c sessions, Poisson arrivals at λ per second,
 * exponential holds of mean 1/μ seconds, first come first served, nobody
 * turned away. Offered load a = λ/μ (the mean number of busy sessions, by
 * Little's law), utilisation ρ = a/c; the queue is stable only for ρ < 1.
 */

export interface ErlangC {
  /** ρ = λ / (cμ). */
  utilisation: number;
  /** P(wait > 0): the probability that an arriving caller finds every session busy. */
  waitProbability: number;
  /** Mean wait in the queue, seconds (over all callers, including those who did not wait). */
  meanWaitSeconds: number;
  /** The wait that a share `p` of callers do not exceed, seconds (0 when at least p never wait). */
  waitQuantile(p: number): number;
}

export function erlangC(sessions: number, arrivalsPerSecond: number, meanHoldSeconds: number): ErlangC {
  const c = sessions;
  const a = arrivalsPerSecond * meanHoldSeconds;
  const rho = a / c;
  if (!(rho < 1)) {
    return { utilisation: rho, waitProbability: 1, meanWaitSeconds: Infinity, waitQuantile: () => Infinity };
  }
  // Σ_{k<c} a^k/k! and a^c/c!, built term by term (no factorial overflow for large c).
  let term = 1;
  let sum = 0;
  for (let k = 0; k < c; k += 1) {
    sum += term;
    term *= a / (k + 1);
  }
  const top = term / (1 - rho);
  const waitProbability = top / (sum + top);
  // The wait of a caller who waits is exponential with rate cμ − λ.
  const drain = c / meanHoldSeconds - arrivalsPerSecond;
  return {
    utilisation: rho,
    waitProbability,
    meanWaitSeconds: waitProbability / drain,
    waitQuantile: (p) => (waitProbability <= 1 - p ? 0 : Math.log(waitProbability / (1 - p)) / drain),
  };
}
