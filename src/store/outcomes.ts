import type pg from 'pg'
import { insertStatus, type StatusWrite } from './outbox.js'
import { insertTombstone, upsertRegistration, type RegistrationWrite, type Tombstone } from './registrations.js'

/** What handling one event decided. Written in one transaction with the event's end. */
export interface Outcome {
  /** Short, stored with the event: why it ended this way. */
  note: string
  registration?: RegistrationWrite
  status?: StatusWrite
  /** The application was destroyed: a late create must never map it again. */
  tombstone?: Tombstone
}

export interface EventEnd {
  eventId: number
  orgId: string
  accountNumber: string | null
  attempts: number
  state: 'done' | 'ignored' | 'dead'
}

/** Registration, status outbox row and the inbox row's end commit together or not at all. */
export async function recordOutcome (pool: pg.Pool, end: EventEnd, outcome: Outcome): Promise<void> {
  const client = await pool.connect()
  try {
    await client.query('begin')
    if (outcome.registration) await upsertRegistration(client, outcome.registration, end.eventId)
    if (outcome.status) await insertStatus(client, outcome.status, end.orgId, end.accountNumber)
    if (outcome.tombstone) await insertTombstone(client, outcome.tombstone)
    await client.query(
      `update inbox set state = $2, outcome = $3, attempts = $4, finished_at = now() where id = $1`,
      [end.eventId, end.state, outcome.note, end.attempts])
    await client.query('commit')
  } catch (err) {
    await client.query('rollback').catch(() => {})
    throw err
  } finally {
    client.release()
  }
}
