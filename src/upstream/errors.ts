export const UPSTREAM_TARGETS = ['sources', 'sts', 'rhsm', 'kafka'] as const
export type UpstreamTarget = typeof UPSTREAM_TARGETS[number]

/**
 * - transient: worth retrying (network, timeout, 5xx)
 * - throttled: the upstream refused our rate (STS `Throttling`); retried, and never counted as an event attempt
 * - misconfigured: our own credentials were refused; retried, never blamed on the customer
 * - not_found: the upstream says the thing does not exist
 * - rejected: the upstream refused the request for a reason that retrying will not change
 */
export type UpstreamErrorKind = 'transient' | 'throttled' | 'misconfigured' | 'not_found' | 'rejected'

export class UpstreamError extends Error {
  readonly code = 'CLOUDOREG_UPSTREAM'
  /**
   * The gate (src/upstream/breaker.ts) of the upstream this failure is about, when it is an outage
   * or throttling rather than something about one source: the runner parks the event there.
   */
  gate?: string
  /** The upstream asked us to slow down (429, or a wait in Retry-After / X-RateLimit-Delay): never an event attempt. */
  throttled = false
  /** Refused by the gate before any request was sent: nothing reached the upstream. */
  refused = false
  /** How long the upstream asked every caller to wait (Retry-After, X-RateLimit-Delay), already bounded. */
  retryAfterMs?: number
  /** What the upstream or the network called the failure: an AWS error name (`Throttling`), a socket error (`ECONNREFUSED`). */
  errorName?: string
  constructor (
    readonly target: UpstreamTarget,
    readonly kind: UpstreamErrorKind,
    message: string,
    readonly status?: number,
    /** What the upstream said, safe to show (no secrets). */
    readonly reason?: string
  ) {
    super(`${target}: ${message}`)
    this.name = 'UpstreamError'
  }
}

export function isRetryable (err: unknown): boolean {
  if (err instanceof UpstreamError) return err.kind === 'transient' || err.kind === 'throttled' || err.kind === 'misconfigured'
  // Anything unexpected (a database hiccup, a bug) is retried until the event's attempts run out.
  return true
}
