import type { AttemptWrite } from '../store/attempts.js'
import type { Outcome } from '../store/outcomes.js'
import { UpstreamError } from '../upstream/errors.js'

type Failure = Pick<AttemptWrite, 'upstream' | 'step' | 'httpStatus' | 'errorCode' | 'outcomeCode' | 'error'>

/** The step of the check a handler was at (registration-flow keeps it in the attempt's memo), if any. */
export function stepOf (memo: Record<string, unknown>): string | null {
  return typeof memo.step === 'string' ? memo.step : null
}

/** What failed in an attempt that threw: which upstream, its HTTP status, its error code, in the terms operators filter on. */
export function failureOf (err: Error, step: string | null, message: string): Failure {
  if (!(err instanceof UpstreamError)) return { upstream: null, step, httpStatus: null, errorCode: null, outcomeCode: null, error: message }
  // Bounded: a code is a filter value, not a message. A code that is not text is none (an
  // exception here would end the event's task and let its source's next event run first).
  const named = typeof err.errorName === 'string' ? err.errorName.slice(0, 100) : undefined
  // STS names its errors (AccessDenied, Throttling); the HTTP upstreams are known by their status.
  const errorCode = err.target !== 'sts' && err.status !== undefined ? `HTTP ${err.status}` : named ?? (err.status !== undefined ? `HTTP ${err.status}` : null)
  return { upstream: err.target, step, httpStatus: err.status ?? null, errorCode, outcomeCode: null, error: message }
}

const UPSTREAM_OF_STEP: Record<string, string> = {
  'read application': 'sources',
  'read authentication': 'sources',
  AssumeRole: 'sts',
  GetCallerIdentity: 'sts',
  RHSM: 'rhsm'
}

/** What an attempt that returned an outcome decided: the error code reported, and the upstream answer behind it. */
export function decidedBy (outcome: Outcome): Failure {
  const r = outcome.registration
  if (r === undefined || r.lastErrorCode === null) {
    return { upstream: null, step: null, httpStatus: null, errorCode: null, outcomeCode: null, error: null }
  }
  const code = r.upstreamCode
  const http = code === null ? null : /^HTTP (\d{3})/.exec(code)
  return {
    upstream: r.failedStep === null ? null : UPSTREAM_OF_STEP[r.failedStep] ?? null,
    step: r.failedStep,
    httpStatus: http === null ? null : Number(http[1]),
    errorCode: http === null ? code : `HTTP ${http[1]}`,
    outcomeCode: r.lastErrorCode,
    error: r.lastErrorMessage
  }
}
