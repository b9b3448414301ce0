import { randomUUID } from 'node:crypto'
import type pg from 'pg'
import type { IncomingEvent } from '../events/event.js'
import { newTraceContext, traceIdOf, type TraceContext } from '../tracing/context.js'

export interface InboxEvent {
  id: number
  eventType: string
  queueKey: string | null
  orgId: string
  accountNumber: string | null
  body: Record<string, unknown>
  deliveryId: string | null
  attempts: number
  nextAttemptAt: Date
  receivedAt: Date
  /** The trace its processing continues, on whichever replica and however late it runs. */
  trace: TraceContext
}

/** Per event appended: its inbox id, or null when it was a redelivery. */
export type AppendResult = Array<number | null>

interface Waiter {
  events: IncomingEvent[]
  resolve: (result: AppendResult) => void
  reject: (err: Error) => void
}

const GROUP_LIMIT = 2000

const INSERT = `
with input as (
  select * from unnest($1::text[], $2::integer[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[], $8::text[], $9::text[], $10::text[])
    with ordinality as t(dedupe_key, ttl_ms, event_type, queue_key, org_id, account_number, body, delivery_id, traceparent, tracestate, ord)
), fresh as (
  insert into delivery_keys (key, expires_at)
  select dedupe_key, case when ttl_ms is null then null else now() + ttl_ms * interval '1 millisecond' end from input
  on conflict (key) do update set expires_at = excluded.expires_at
    where delivery_keys.expires_at is not null and delivery_keys.expires_at < now()
  returning key
)
insert into inbox (event_type, queue_key, org_id, account_number, body, delivery_id, dedupe_key, traceparent, tracestate)
select i.event_type, i.queue_key, i.org_id, i.account_number, i.body, i.delivery_id, i.dedupe_key, i.traceparent, i.tracestate
from input i join fresh f on f.key = i.dedupe_key
order by i.ord
returning id, dedupe_key`

/** A stored event as operators and the history route see it. */
export interface EventRecord {
  id: number
  eventType: string
  orgId: string
  queueKey: string | null
  deliveryId: string | null
  state: 'pending' | 'done' | 'ignored' | 'dead'
  outcome: string | null
  attempts: number
  lastError: string | null
  receivedAt: Date
  finishedAt: Date | null
  /** The trace of its ingest and processing. */
  traceId: string | null
  /** The STS session its verification assumed the customer's role under (their CloudTrail shows it). */
  roleSessionName: string | null
}

export interface Inbox {
  /**
   * Stores events durably. Concurrent callers share one transaction (group
   * commit); each promise settles only after that transaction committed.
   */
  append: (events: IncomingEvent[]) => Promise<AppendResult>
  /** Called after each commit that stored new events. */
  onAppend: (listener: () => void) => void
  scheduleRetry: (id: number, attempts: number, nextAttemptAt: Date, error: string) => Promise<void>
  /** Ends events no handler acts on; every other end goes through recordOutcome. */
  markIgnored: (ids: number[], outcome: string) => Promise<void>
  deadLetters: (limit: number, offset: number) => Promise<{ count: number, data: EventRecord[] }>
  /** The events of an org that ran on any of these queue keys, oldest first. */
  eventsOf: (orgId: string, queueKeys: string[], limit: number) => Promise<EventRecord[]>
  /**
   * Appends a copy of an ended event as a new event (at the end of its source's
   * queue); null when there is no such event, 'pending' when it has not ended.
   */
  replay: (id: number) => Promise<number | null | 'pending'>
}

const RECORD_COLUMNS = 'id, event_type, org_id, queue_key, delivery_id, state, outcome, attempts, last_error, received_at, finished_at, traceparent, role_session_name'

function toRecord (r: Record<string, any>): EventRecord {
  return {
    id: Number(r.id),
    eventType: r.event_type,
    orgId: r.org_id,
    queueKey: r.queue_key,
    deliveryId: r.delivery_id,
    state: r.state,
    outcome: r.outcome,
    attempts: r.attempts,
    lastError: r.last_error,
    receivedAt: r.received_at,
    finishedAt: r.finished_at,
    traceId: traceIdOf(r.traceparent),
    roleSessionName: r.role_session_name
  }
}

export function rowToEvent (row: Record<string, any>): InboxEvent {
  return {
    id: Number(row.id),
    eventType: row.event_type,
    queueKey: row.queue_key,
    orgId: row.org_id,
    accountNumber: row.account_number,
    body: row.body,
    deliveryId: row.delivery_id,
    attempts: row.attempts,
    nextAttemptAt: row.next_attempt_at,
    receivedAt: row.received_at,
    // Rows stored before trace contexts were: a trace of their own from now on.
    trace: row.traceparent === null ? newTraceContext() : { traceparent: row.traceparent, tracestate: row.tracestate }
  }
}

export function createInbox (pool: pg.Pool): Inbox {
  const waiting: Waiter[] = []
  const listeners: Array<() => void> = []
  let writing = false

  async function writeGroup (group: Waiter[]): Promise<void> {
    // A key seen twice in one group is a redelivery of the first: keep the first only.
    const firstIndex = new Map<string, number>()
    const unique: IncomingEvent[] = []
    for (const w of group) {
      for (const e of w.events) {
        // An event that arrived with no trace context starts a trace of its own here.
        e.trace ??= newTraceContext()
        if (!firstIndex.has(e.dedupeKey)) {
          firstIndex.set(e.dedupeKey, unique.length)
          unique.push(e)
        }
      }
    }
    // Named, so each connection parses and plans it once: it runs for every push.
    const { rows } = await pool.query<{ id: string, dedupe_key: string }>({
      name: 'inbox-append',
      text: INSERT,
      values: [
        unique.map(e => e.dedupeKey),
        unique.map(e => e.dedupeTtlMs),
        unique.map(e => e.eventType),
        unique.map(e => e.queueKey),
        unique.map(e => e.orgId),
        unique.map(e => e.accountNumber),
        unique.map(e => JSON.stringify(e.body)),
        unique.map(e => e.deliveryId),
        unique.map(e => e.trace!.traceparent),
        unique.map(e => e.trace!.tracestate)
      ]
    })
    const stored = new Map(rows.map(r => [r.dedupe_key, Number(r.id)]))
    const claimed = new Set<string>()
    for (const w of group) {
      w.resolve(w.events.map(e => {
        const id = stored.get(e.dedupeKey)
        if (id === undefined || claimed.has(e.dedupeKey)) return null
        claimed.add(e.dedupeKey)
        return id
      }))
    }
    if (rows.length > 0) for (const l of listeners) l()
  }

  // One writer at a time: concurrent pushes share one fsync.
  async function drain (): Promise<void> {
    writing = true
    try {
      while (waiting.length > 0) {
        let count = 0
        let take = 0
        while (take < waiting.length && (take === 0 || count + waiting[take].events.length <= GROUP_LIMIT)) {
          count += waiting[take].events.length
          take++
        }
        const group = waiting.splice(0, take)
        await writeGroup(group).catch((err: Error) => { for (const w of group) w.reject(err) })
      }
    } finally {
      writing = false
    }
  }

  return {
    append (events) {
      return new Promise<AppendResult>((resolve, reject) => {
        waiting.push({ events, resolve, reject })
        if (!writing) void drain()
      })
    },
    onAppend (listener) {
      listeners.push(listener)
    },
    async scheduleRetry (id, attempts, nextAttemptAt, error) {
      await pool.query('update inbox set attempts = $2, next_attempt_at = $3, last_error = $4 where id = $1', [id, attempts, nextAttemptAt, error])
    },
    async deadLetters (limit, offset) {
      const count = await pool.query<{ n: number }>("select count(*)::int as n from inbox where state = 'dead'")
      const { rows } = await pool.query(`select ${RECORD_COLUMNS} from inbox where state = 'dead' order by id limit $1 offset $2`, [limit, offset])
      return { count: count.rows[0].n, data: rows.map(toRecord) }
    },
    async eventsOf (orgId, queueKeys, limit) {
      const { rows } = await pool.query(
        `select ${RECORD_COLUMNS} from inbox where org_id = $1 and queue_key = any($2::text[]) order by id limit $3`, [orgId, queueKeys, limit])
      return rows.map(toRecord)
    },
    async replay (id) {
      const { rows } = await pool.query(
        'select state, event_type, queue_key, org_id, account_number, body, delivery_id from inbox where id = $1', [id])
      if (rows.length === 0) return null
      const r = rows[0]
      if (r.state === 'pending') return 'pending'
      const [copy] = await this.append([{
        eventType: r.event_type,
        queueKey: r.queue_key,
        orgId: r.org_id,
        accountNumber: r.account_number,
        body: r.body,
        deliveryId: r.delivery_id,
        dedupeKey: `replay:${id}:${randomUUID()}`,
        dedupeTtlMs: 60_000
      }])
      return copy
    },
    async markIgnored (ids, outcome) {
      await pool.query(
        'update inbox set state = \'ignored\', outcome = $2, finished_at = now() where id = any($1::bigint[]) and state = \'pending\'',
        [ids, outcome])
    }
  }
}
