import type pg from 'pg'
import { backoffDelay } from '../backoff.js'
import type { TraceContext } from '../tracing/context.js'
import { TRANSACTION_IDLE_LIMIT_MS, withTransaction } from './transaction.js'

export interface StatusMessage {
  id: number
  applicationId: string
  orgId: string
  accountNumber: string | null
  status: 'available' | 'unavailable'
  error: string
  /** The trace of the event that decided it; its message carries it on (null: decided before traces were stored). */
  trace: TraceContext | null
  /** Failed sends so far. */
  attempts: number
}

/** A message the sink could not deliver; `permanent` when sending it again cannot succeed. */
export interface StatusFailure {
  id: number
  error: string
  permanent: boolean
  /** Not tried before the send's deadline: left unsent as it was, no send counted. */
  deferred?: boolean
}

/** A send's deadline, in Date.now() milliseconds. */
export type SendDeadline = number

/** How often a failed message is sent again before it is parked, and how long between sends. */
export interface StatusRetry {
  maxAttempts: number
  delayMs: (attempts: number) => number
}

/** An undeliverable message, set aside for an operator. */
export interface ParkedStatus extends StatusMessage {
  lastError: string | null
  createdAt: Date
  parkedAt: Date
}

export interface StatusWrite {
  applicationId: string
  status: 'available' | 'unavailable'
  error: string
}

export interface StatusRecord extends StatusWrite {
  createdAt: Date
  sentAt: Date | null
  superseded: boolean
}

export interface Outbox {
  /**
   * Claims unsent messages, hands them to `send` and marks them sent once it
   * resolves; returns how many were sent. Relays of several replicas each
   * claim different rows (row locks, SKIP LOCKED) and skip an application
   * whose older message another relay is sending, so each is sent in order.
   * Only the latest unsent message per application is sent: sources-api
   * applies status messages concurrently, so an older one sent alongside a
   * newer one could win; older rows are marked superseded instead.
   *
   * `send` may name messages it could not deliver: those are sent again after
   * `retry.delayMs`, and parked after `retry.maxAttempts` sends (at once when
   * the failure is permanent); they never hold back another message. A send
   * that throws leaves the whole batch unsent (an outage: no message is blamed).
   * The rows stay locked while `send` runs, in a transaction PostgreSQL ends
   * when idle too long: `send` starts no message after `deadline` and names
   * those it did not try as deferred.
   */
  relay: (limit: number, send: (messages: StatusMessage[], deadline: SendDeadline) => Promise<StatusFailure[] | undefined | void>, retry?: StatusRetry) => Promise<number>
  /** Parked messages, oldest first, for operators. */
  parked: (limit: number, offset: number) => Promise<{ count: number, data: ParkedStatus[] }>
  /** Sends a parked message again (as new); false when there is no such parked message. */
  retryParked: (id: number) => Promise<boolean>
  /** Every status decided for an application of an org, oldest first. */
  statusesOf: (orgId: string, applicationId: string, limit: number) => Promise<StatusRecord[]>
}

const DEFAULT_RETRY: StatusRetry = { maxAttempts: 10, delayMs: attempts => backoffDelay({ firstMs: 2000, maxMs: 15 * 60_000, jitter: 0.5 }, attempts) }

function toMessage (r: Record<string, any>): StatusMessage {
  return {
    id: Number(r.id),
    applicationId: r.application_id,
    orgId: r.org_id,
    accountNumber: r.account_number,
    status: r.status,
    error: r.error,
    attempts: r.attempts,
    // Null: decided before traces were stored (and parked lists, which do not read it).
    trace: r.traceparent == null ? null : { traceparent: r.traceparent, tracestate: r.tracestate }
  }
}

const PARKED = 'parked_at is not null and sent_at is null and not superseded'

export function createOutbox (pool: pg.Pool): Outbox {
  return {
    async relay (limit, send, retry = DEFAULT_RETRY) {
      return await withTransaction(pool, async client => {
        await client.query(
          `update status_outbox set superseded = true where id in (
             select o.id from status_outbox o
             where o.sent_at is null and not o.superseded
               and exists (select 1 from status_outbox n where n.application_id = o.application_id and n.id > o.id
                           and n.sent_at is null and not n.superseded)
             for update skip locked)`)
        // By lane, then id: a customer's status passes a wave of re-checks'. Each application's order still
        // holds, because at most one of its rows is ever sent at a time, its latest: the update above
        // superseded its older unsent rows, the check below skips the application when any other unsent
        // row of it is not in this batch (locked by another relay, due later, or written since), and of
        // two rows of it in this batch only the later is sent.
        const { rows } = await client.query(
          `select id, application_id, org_id, account_number, status, error, attempts, traceparent, tracestate from status_outbox
           where sent_at is null and not superseded and parked_at is null and next_attempt_at <= now()
           order by lane, id limit $1 for update skip locked`, [limit])
        const mine = rows.map(r => r.id as string)
        // Rows locked by another relay still read as unsent: their applications wait for that relay's commit.
        const busy = await client.query<{ application_id: string }>(
          `select distinct application_id from status_outbox
           where sent_at is null and not superseded and parked_at is null and application_id = any($1::text[]) and not (id = any($2::bigint[]))`,
          [[...new Set(rows.map(r => r.application_id as string))], mine])
        const elsewhere = new Set(busy.rows.map(r => r.application_id))
        // A row written after the update above can meet an older one of its application here (lane order
        // could even put the older one last): only the later is sent, the older is superseded below.
        const latest = new Map<string, number>()
        for (const r of rows) latest.set(r.application_id, Math.max(Number(r.id), latest.get(r.application_id) ?? 0))
        const ours = rows.filter(r => !elsewhere.has(r.application_id))
        const older = ours.filter(r => latest.get(r.application_id) !== Number(r.id)).map(r => r.id as string)
        const batch = ours.filter(r => latest.get(r.application_id) === Number(r.id)).map(toMessage)
        if (batch.length > 0) {
          // A third of the idle limit to start sends in, the rest for the last one to finish (its own timeouts).
          const failures = new Map((await send(batch, Date.now() + TRANSACTION_IDLE_LIMIT_MS / 3) ?? []).map(f => [f.id, f]))
          const failed = batch.filter(m => failures.has(m.id) && failures.get(m.id)!.deferred !== true)
          // Every older row has its application's later one in the batch, so it is superseded here.
          await client.query(
            `update status_outbox set sent_at = case when id = any($1::bigint[]) then now() end, superseded = id = any($2::bigint[])
             where id = any($1::bigint[]) or id = any($2::bigint[])`, [batch.filter(m => !failures.has(m.id)).map(m => m.id), older])
          if (failed.length > 0) {
            await client.query(
              `update status_outbox o set attempts = o.attempts + 1, last_error = f.error,
                 next_attempt_at = now() + f.delay_ms * interval '1 millisecond',
                 parked_at = case when f.permanent or o.attempts + 1 >= $5 then now() end
               from unnest($1::bigint[], $2::text[], $3::boolean[], $4::integer[]) as f(id, error, permanent, delay_ms)
               where o.id = f.id`,
              [failed.map(m => m.id), failed.map(m => failures.get(m.id)!.error.slice(0, 1000)), failed.map(m => failures.get(m.id)!.permanent),
                failed.map(m => retry.delayMs(m.attempts + 1)), retry.maxAttempts])
          }
        }
        return batch.length
      })
    },
    async parked (limit, offset) {
      const count = await pool.query<{ n: number }>(`select count(*)::int as n from status_outbox where ${PARKED}`)
      const { rows } = await pool.query(
        `select id, application_id, org_id, account_number, status, error, attempts, last_error, created_at, parked_at
         from status_outbox where ${PARKED} order by id limit $1 offset $2`, [limit, offset])
      return {
        count: count.rows[0].n,
        data: rows.map(r => ({ ...toMessage(r), lastError: r.last_error, createdAt: r.created_at, parkedAt: r.parked_at }))
      }
    },
    async retryParked (id) {
      const { rowCount } = await pool.query(
        `update status_outbox set parked_at = null, attempts = 0, next_attempt_at = now() where id = $1 and ${PARKED}`, [id])
      return rowCount === 1
    },
    async statusesOf (orgId, applicationId, limit) {
      const { rows } = await pool.query(
        `select application_id, status, error, created_at, sent_at, superseded from status_outbox
         where org_id = $1 and application_id = $2 order by id limit $3`, [orgId, applicationId, limit])
      return rows.map(r => ({ applicationId: r.application_id, status: r.status, error: r.error, createdAt: r.created_at, sentAt: r.sent_at, superseded: r.superseded }))
    }
  }
}
