import type { AttemptBody } from '../schemas.js'
import type { AttemptRecord } from '../store/index.js'

export function attemptBody (a: AttemptRecord): AttemptBody {
  return {
    attempt: a.attempt,
    started_at: a.startedAt.toISOString(),
    finished_at: a.finishedAt.toISOString(),
    duration_ms: a.durationMs,
    result: a.result,
    upstream: a.upstream,
    step: a.step,
    http_status: a.httpStatus,
    error_code: a.errorCode,
    outcome_code: a.outcomeCode,
    error: a.error,
    replica: a.replica
  }
}
