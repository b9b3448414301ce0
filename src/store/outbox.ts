import type pg from 'pg'

export interface StatusMessage {
  id: number
  applicationId: string
  orgId: string
  accountNumber: string | null
  status: 'available' | 'unavailable'
  error: string
}

export interface StatusWrite {
  applicationId: string
  status: 'available' | 'unavailable'
  error: string
}

export async function insertStatus (db: pg.ClientBase, s: StatusWrite, orgId: string, accountNumber: string | null): Promise<void> {
  await db.query(
    'insert into status_outbox (application_id, org_id, account_number, status, error) values ($1, $2, $3, $4, $5)',
    [s.applicationId, orgId, accountNumber, s.status, s.error])
}

export interface StatusRecord extends StatusWrite {
  createdAt: Date
  sentAt: Date | null
  superseded: boolean
}

export interface Outbox {
  /**
   * The unsent messages to send now: the latest per application, in id order.
   * sources-api applies status messages concurrently, so an older one sent
   * alongside a newer one could win; older rows are marked superseded instead.
   */
  next: (limit: number) => Promise<StatusMessage[]>
  markSent: (ids: number[]) => Promise<void>
  /** Every status decided for an application of an org, oldest first. */
  statusesOf: (orgId: string, applicationId: string, limit: number) => Promise<StatusRecord[]>
}

export function createOutbox (pool: pg.Pool): Outbox {
  return {
    async next (limit) {
      await pool.query(
        `update status_outbox o set superseded = true
         where o.sent_at is null and not o.superseded
           and exists (select 1 from status_outbox n where n.application_id = o.application_id and n.id > o.id
                       and n.sent_at is null and not n.superseded)`)
      const { rows } = await pool.query(
        `select id, application_id, org_id, account_number, status, error from status_outbox
         where sent_at is null and not superseded order by id limit $1`, [limit])
      return rows.map(r => ({
        id: Number(r.id),
        applicationId: r.application_id,
        orgId: r.org_id,
        accountNumber: r.account_number,
        status: r.status,
        error: r.error
      }))
    },
    async statusesOf (orgId, applicationId, limit) {
      const { rows } = await pool.query(
        `select application_id, status, error, created_at, sent_at, superseded from status_outbox
         where org_id = $1 and application_id = $2 order by id limit $3`, [orgId, applicationId, limit])
      return rows.map(r => ({ applicationId: r.application_id, status: r.status, error: r.error, createdAt: r.created_at, sentAt: r.sent_at, superseded: r.superseded }))
    },
    async markSent (ids) {
      await pool.query('update status_outbox set sent_at = now() where id = any($1::bigint[])', [ids])
    }
  }
}
