import type pg from 'pg'

/** One attempt of one event, as it is written with the attempt's retry or outcome. */
export interface AttemptWrite {
  /** 1 for the first attempt. */
  attempt: number
  startedAt: Date
  durationMs: number
  /** What the attempt led to: a retry later, the event's end, or its end as a dead letter. */
  result: 'retry' | 'done' | 'dead'
  /** The upstream whose call failed (sources, sts, rhsm, kafka), when one did. */
  upstream: string | null
  /** The step of the check that was running or failed (`AssumeRole`, `RHSM`, ...). */
  step: string | null
  httpStatus: number | null
  /** What the upstream answered: an AWS error code (`AccessDenied`), `HTTP 503`, a network error (`ECONNREFUSED`). */
  errorCode: string | null
  /** The error code cloudoreg reported for the event (`CG3002`, `CR5000`), when the attempt decided one. */
  outcomeCode: string | null
  /** The error text, as stored in the event's last_error: built by cloudoreg, no secrets. */
  error: string | null
  /** The replica that ran it (its lease owner id). */
  replica: string
}

export interface AttemptRecord extends AttemptWrite {
  eventId: number
  finishedAt: Date
}

const COLUMNS = 'event_id, attempt, started_at, duration_ms, result, upstream, step, http_status, error_code, outcome_code, error, replica'
const INSERTED = `${COLUMNS}, finished_at`

/** Parameters $p..$p+10 of an attempt, in COLUMNS order after the event id. */
export function attemptValues (a: AttemptWrite): unknown[] {
  return [a.attempt, a.startedAt, Math.max(0, Math.round(a.durationMs)), a.result, a.upstream, a.step, a.httpStatus,
    a.errorCode?.slice(0, 200) ?? null, a.outcomeCode, a.error?.slice(0, 1000) ?? null, a.replica]
}

/** An insert of one attempt, for a data-modifying CTE: `eventId` is an SQL expression (`ended.id`, `$1`), `from` what it selects from. */
export function insertAttempt (p: number, eventId: string, from = ''): string {
  // Ended at its start plus its duration, both by the replica's clock: a skewed database clock cannot make it end before it began.
  return `insert into event_attempts (${INSERTED})
  select ${eventId}, $${p}::integer, $${p + 1}::timestamptz, $${p + 2}::integer, $${p + 3}::text, $${p + 4}::text, $${p + 5}::text,
    $${p + 6}::integer, $${p + 7}::text, $${p + 8}::text, $${p + 9}::text, $${p + 10}::text,
    $${p + 1}::timestamptz + $${p + 2}::integer * interval '1 millisecond' ${from}`
}

function toAttempt (r: Record<string, any>): AttemptRecord {
  return {
    eventId: Number(r.event_id),
    attempt: r.attempt,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    durationMs: r.duration_ms,
    result: r.result,
    upstream: r.upstream,
    step: r.step,
    httpStatus: r.http_status,
    errorCode: r.error_code,
    outcomeCode: r.outcome_code,
    error: r.error,
    replica: r.replica
  }
}

/** The attempts of these events, grouped by event, each in order. */
export async function attemptsOf (pool: pg.Pool, eventIds: number[]): Promise<Map<number, AttemptRecord[]>> {
  const byEvent = new Map<number, AttemptRecord[]>()
  if (eventIds.length === 0) return byEvent
  const { rows } = await pool.query(`select ${COLUMNS}, finished_at from event_attempts where event_id = any($1::bigint[]) order by event_id, attempt, id`, [eventIds])
  for (const row of rows) {
    const a = toAttempt(row)
    const list = byEvent.get(a.eventId)
    if (list === undefined) byEvent.set(a.eventId, [a])
    else list.push(a)
  }
  return byEvent
}
