export interface RetryPolicy {
  maxAttempts: number
  baseDelayMs: number
  maxDelayMs: number
}

/** Exponential backoff with full jitter on the upper half, so that retries of many sources spread out. */
export function backoffDelay (policy: RetryPolicy, attempts: number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempts - 1))
  return Math.round(ceiling / 2 + Math.random() * ceiling / 2)
}
