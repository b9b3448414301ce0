/** How one retry loop spaces its attempts. Every retry loop in cloudoreg states one and calls `backoffDelay`. */
export interface Backoff {
  /** The longest wait before the first retry. */
  firstMs: number
  /** No wait is longer than this. */
  maxMs: number
  /**
   * The share of each wait drawn at random, from 0 (none) to 1 (anything from 0 up): callers that
   * failed together (many sources, several replicas) then retry spread out, not all at once.
   */
  jitter: number
}

/** Past this many doublings every wait is `maxMs` anyway; the bound keeps the arithmetic finite. */
const MAX_DOUBLINGS = 40

/**
 * The wait before retry number `retry` (1 for the first): a ceiling that doubles from `firstMs` up
 * to `maxMs`, of which a random share of up to `jitter` is taken off. Always between
 * `ceiling × (1 − jitter)` and `ceiling`, in whole milliseconds.
 */
export function backoffDelay (b: Backoff, retry: number): number {
  const doublings = Math.min(MAX_DOUBLINGS, Math.max(0, retry - 1))
  const ceiling = Math.min(b.maxMs, b.firstMs * 2 ** doublings)
  const jitter = Math.min(1, Math.max(0, b.jitter))
  return Math.round(ceiling * (1 - jitter * Math.random()))
}
