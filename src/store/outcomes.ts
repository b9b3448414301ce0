import type pg from 'pg'
import type { TraceContext } from '../tracing/context.js'
import { insertStatus, type StatusWrite } from './outbox.js'
import { withTransaction } from './transaction.js'
import { insertAudit, insertTombstone, upsertRegistration, type AuditWrite, type RegistrationWrite, type Tombstone } from './registrations.js'

/** What handling one event decided. Written in one transaction with the event's end. */
export interface Outcome {
  /** Short, stored with the event: why it ended this way. */
  note: string
  registration?: RegistrationWrite
  status?: StatusWrite
  /** The application was destroyed: a late create must never map it again. */
  tombstone?: Tombstone
  /** A line for the registration org's history (e.g. another org's event refused); `eventId` is filled in. */
  audit?: Omit<AuditWrite, 'eventId'>
  /** The STS RoleSessionName the event's verification used (the customer's CloudTrail shows it). */
  roleSessionName?: string
}

export interface EventEnd {
  eventId: number
  /** The lease this replica must still hold on the event's key for the outcome to count. */
  leaseKey: string
  leaseOwner: string
  orgId: string
  accountNumber: string | null
  attempts: number
  state: 'done' | 'ignored' | 'dead'
  /** The source the event concerned, when known: kept with the event so that its source's history finds it. */
  sourceId: string | null
  /** Stored with the status, so that its message continues the event's trace. */
  trace: TraceContext
}

/** The event's key is leased to another replica now, or the event already ended there: nothing was written. */
export class LeaseLostError extends Error {
  code = 'CLOUDOREG_LEASE_LOST'
}

/** Registration, status outbox row and the inbox row's end commit together or not at all. */
export async function recordOutcome (pool: pg.Pool, end: EventEnd, outcome: Outcome): Promise<void> {
  await withTransaction(pool, async client => {
    // Locking the lease row makes a replica taking the key over wait for this commit, and then see the event ended.
    const lease = await client.query('select 1 from source_leases where queue_key = $1 and owner = $2 for share', [end.leaseKey, end.leaseOwner])
    if (lease.rowCount === 0) throw new LeaseLostError(`the lease on ${end.leaseKey} is no longer held by this replica`)
    if (outcome.registration) await upsertRegistration(client, outcome.registration, end.eventId)
    if (outcome.status) await insertStatus(client, outcome.status, end.orgId, end.accountNumber, end.trace)
    if (outcome.tombstone) await insertTombstone(client, outcome.tombstone)
    if (outcome.audit) await insertAudit(client, { ...outcome.audit, eventId: end.eventId })
    const ended = await client.query(
      `update inbox set state = $2, outcome = $3, attempts = $4, finished_at = now(), source_id = coalesce(source_id, $5),
         role_session_name = $6
       where id = $1 and state = 'pending'`,
      [end.eventId, end.state, outcome.note, end.attempts, end.sourceId ?? outcome.registration?.sourceId ?? null, outcome.roleSessionName ?? null])
    if (ended.rowCount === 0) throw new LeaseLostError(`event ${end.eventId} has already ended`)
  })
}
