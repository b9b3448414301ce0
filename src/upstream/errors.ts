export type UpstreamTarget = 'sources' | 'sts' | 'rhsm' | 'kafka'

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
