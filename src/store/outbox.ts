import type pg from 'pg'
import type { TraceContext } from '../tracing/context.js'
import { withTransaction } from './transaction.js'

export interface StatusMessage {
  id: number
  applicationId: string
  orgId: string
  accountNumber: string | null
  status: 'available' | 'unavailable'
  error: string
  /** The trace of the event that decided it; its message carries it on (null: decided before traces were stored). */
  trace: TraceContext | null
}

export interface StatusWrite {
  applicationId: string
  status: 'available' | 'unavailable'
  error: string
}

export async function insertStatus (db: pg.ClientBase, s: StatusWrite, orgId: string, accountNumber: string | null, trace: TraceContext | null = null): Promise<void> {
  await db.query(
    'insert into status_outbox (application_id, org_id, account_number, status, error, traceparent, tracestate) values ($1, $2, $3, $4, $5, $6, $7)',
    [s.applicationId, orgId, accountNumber, s.status, s.error, trace?.traceparent ?? null, trace?.tracestate ?? null])
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
   */
  relay: (limit: number, send: (messages: StatusMessage[]) => Promise<void>) => Promise<number>
  /** Every status decided for an application of an org, oldest first. */
  statusesOf: (orgId: string, applicationId: string, limit: number) => Promise<StatusRecord[]>
}

export function createOutbox (pool: pg.Pool): Outbox {
  return {
    async relay (limit, send) {
      return await withTransaction(pool, async client => {
        await client.query(
          `update status_outbox set superseded = true where id in (
             select o.id from status_outbox o
             where o.sent_at is null and not o.superseded
               and exists (select 1 from status_outbox n where n.application_id = o.application_id and n.id > o.id
                           and n.sent_at is null and not n.superseded)
             for update skip locked)`)
        const { rows } = await client.query(
          `select id, application_id, org_id, account_number, status, error, traceparent, tracestate from status_outbox
           where sent_at is null and not superseded order by id limit $1 for update skip locked`, [limit])
        const mine = rows.map(r => r.id as string)
        // Rows locked by another relay still read as unsent: their applications wait for that relay's commit.
        const busy = await client.query<{ application_id: string }>(
          `select distinct application_id from status_outbox
           where sent_at is null and not superseded and application_id = any($1::text[]) and not (id = any($2::bigint[]))`,
          [[...new Set(rows.map(r => r.application_id as string))], mine])
        const elsewhere = new Set(busy.rows.map(r => r.application_id))
        const batch: StatusMessage[] = rows.filter(r => !elsewhere.has(r.application_id)).map(r => ({
          id: Number(r.id),
          applicationId: r.application_id,
          orgId: r.org_id,
          accountNumber: r.account_number,
          status: r.status,
          error: r.error,
          trace: r.traceparent === null ? null : { traceparent: r.traceparent, tracestate: r.tracestate }
        }))
        if (batch.length > 0) {
          await send(batch)
          await client.query('update status_outbox set sent_at = now() where id = any($1::bigint[])', [batch.map(m => m.id)])
        }
        return batch.length
      })
    },
    async statusesOf (orgId, applicationId, limit) {
      const { rows } = await pool.query(
        `select application_id, status, error, created_at, sent_at, superseded from status_outbox
         where org_id = $1 and application_id = $2 order by id limit $3`, [orgId, applicationId, limit])
      return rows.map(r => ({ applicationId: r.application_id, status: r.status, error: r.error, createdAt: r.created_at, sentAt: r.sent_at, superseded: r.superseded }))
    }
  }
}
