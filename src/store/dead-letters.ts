import type pg from 'pg'
import { RECORD_COLUMNS, toRecord, type EventRecord } from './inbox.js'

/** Which dead letters an operator means: every field narrows the selection; none given, all of them. */
export interface DeadLetterFilter {
  /** What the last attempt's upstream answered: `HTTP 503`, `503`, `Throttling`, `ECONNREFUSED` (any case). */
  errorCode?: string
  /** The upstream whose call failed in the last attempt: sources, sts, rhsm, kafka. */
  upstream?: string
  eventType?: string
  orgId?: string
  /** When the event became a dead letter: from `since` (included) to `until` (excluded). */
  since?: Date
  until?: Date
}

export interface DeadLetter extends EventRecord {
  /** Upstream, step, HTTP status and error code of the attempt that gave up. */
  lastAttempt: { upstream: string | null, step: string | null, httpStatus: number | null, errorCode: string | null } | null
}

// The attempt that made the event a dead letter: its last.
const LAST_ATTEMPT = `left join lateral (
  select a.upstream, a.step, a.http_status, a.error_code from event_attempts a where a.event_id = i.id order by a.attempt desc, a.id desc limit 1
) last on true`

/** The where clause of a filter and its parameters, numbered from `first`. */
function where (f: DeadLetterFilter, includeReplayed: boolean, first: number): { sql: string, values: unknown[] } {
  const clauses = ["i.state = 'dead'"]
  const values: unknown[] = []
  const param = (v: unknown): string => { values.push(v); return `$${first + values.length - 1}` }
  if (!includeReplayed) clauses.push('i.replayed_as is null')
  if (f.errorCode !== undefined) {
    const p = param(f.errorCode.toLowerCase())
    clauses.push(`(lower(last.error_code) = ${p} or last.http_status::text = ${p})`)
  }
  if (f.upstream !== undefined) clauses.push(`last.upstream = ${param(f.upstream)}`)
  if (f.eventType !== undefined) clauses.push(`i.event_type = ${param(f.eventType)}`)
  if (f.orgId !== undefined) clauses.push(`i.org_id = ${param(f.orgId)}`)
  if (f.since !== undefined) clauses.push(`i.finished_at >= ${param(f.since)}`)
  if (f.until !== undefined) clauses.push(`i.finished_at < ${param(f.until)}`)
  return { sql: clauses.join(' and '), values }
}

function toDeadLetter (r: Record<string, any>): DeadLetter {
  const known = r.last_upstream !== null || r.last_error_code !== null || r.last_step !== null || r.last_http_status !== null
  return {
    ...toRecord(r),
    lastAttempt: known ? { upstream: r.last_upstream, step: r.last_step, httpStatus: r.last_http_status, errorCode: r.last_error_code } : null
  }
}

/** A page of the dead letters a filter selects, oldest first, and how many it selects in all. */
export async function listDeadLetters (pool: pg.Pool, f: DeadLetterFilter, includeReplayed: boolean, limit: number, offset: number): Promise<{ count: number, data: DeadLetter[] }> {
  const w = where(f, includeReplayed, 1)
  const count = await pool.query<{ n: number }>(`select count(*)::int as n from inbox i ${LAST_ATTEMPT} where ${w.sql}`, w.values)
  const { rows } = await pool.query(
    `select ${RECORD_COLUMNS}, last.upstream as last_upstream, last.step as last_step, last.http_status as last_http_status,
       last.error_code as last_error_code
     from inbox i ${LAST_ATTEMPT} where ${w.sql} order by i.id limit $${w.values.length + 1} offset $${w.values.length + 2}`,
    [...w.values, limit, offset])
  return { count: count.rows[0].n, data: rows.map(toDeadLetter) }
}

/** The ids of the dead letters (not replayed yet) a filter selects, oldest first, at most `limit`: what a bulk replay replays. */
export async function selectDeadLetters (pool: pg.Pool, f: DeadLetterFilter, limit: number): Promise<number[]> {
  const w = where(f, false, 1)
  const { rows } = await pool.query<{ id: string }>(
    `select i.id from inbox i ${LAST_ATTEMPT} where ${w.sql} order by i.id limit $${w.values.length + 1}`, [...w.values, limit])
  return rows.map(r => Number(r.id))
}
