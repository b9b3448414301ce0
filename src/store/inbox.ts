import { randomUUID } from 'node:crypto'
import type pg from 'pg'
import type { IncomingEvent } from '../events/event.js'
import { withTransaction } from './transaction.js'
import { attemptValues, insertAttempt, type AttemptWrite } from './attempts.js'
import { APP_KEY_PREFIX, SOURCE_KEY_PREFIX, sourceIdFor } from '../events/keys.js'
import { newTraceContext, traceIdOf, type TraceContext } from '../tracing/context.js'
import { LANES, laneOf, type Lane } from '../events/lanes.js'

export interface InboxEvent {
  id: number
  eventType: string
  queueKey: string | null
  orgId: string
  accountNumber: string | null
  body: Record<string, unknown>
  deliveryId: string | null
  /** The source, when the event names it or a previous attempt learnt it. */
  sourceId: string | null
  attempts: number
  nextAttemptAt: Date
  receivedAt: Date
  /** The trace its processing continues, on whichever replica and however late it runs. */
  trace: TraceContext
  /** Its lane (src/events/lanes.ts), decided when it was stored. */
  lane: Lane
}

/** Per event appended: its inbox id, or null when it was a redelivery (or a re-check coalesced with a pending one). */
export type AppendResult = Array<number | null>

/**
 * The database refused the events' data itself (SQLSTATE class 22 data exception, 23 integrity
 * constraint, 54 program limit): storing the same events again can never succeed, so the caller
 * must not retry them. Every other failure (connection, timeout, a missing table) is transient.
 */
export class UnstorableError extends Error {
  override name = 'UnstorableError'

  constructor (readonly sqlState: string, reason: string) {
    // The message only: PostgreSQL's detail may quote the row, that is the event itself.
    super(`the database refuses this data (SQLSTATE ${sqlState}: ${reason.slice(0, 200)})`)
  }
}

function refusedData (err: unknown): string | null {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^(22|23|54)[0-9A-Z]{3}$/.test(code) ? code : null
}

interface Waiter {
  events: IncomingEvent[]
  resolve: (result: AppendResult) => void
  reject: (err: Error) => void
  /** When it stops being worth writing: its sender has been answered 503 or has given up. */
  deadline: number
}

const GROUP_LIMIT = 2000

/** The append queue is full, or an append waited too long for its turn: nothing of it was stored. */
export class InboxBusy extends Error {}

export interface InboxLimits {
  /** Events waiting for their group commit, at most; more are refused at once. */
  maxQueuedEvents: number
  /** How long an append may wait for its group commit to start. */
  maxWaitMs: number
}

const DEFAULT_LIMITS: InboxLimits = { maxQueuedEvents: 20_000, maxWaitMs: 10_000 }

const INSERT = `
with input as (
  select * from unnest($1::text[], $2::integer[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[], $8::text[], $9::text[], $10::text[], $11::text[], $12::smallint[])
    with ordinality as t(dedupe_key, ttl_ms, event_type, queue_key, org_id, account_number, body, delivery_id, source_id, traceparent, tracestate, lane, ord)
), fresh as (
  insert into delivery_keys (key, expires_at)
  select dedupe_key, case when ttl_ms is null then null else now() + ttl_ms * interval '1 millisecond' end from input
  on conflict (key) do update set expires_at = excluded.expires_at
    where delivery_keys.expires_at is not null and delivery_keys.expires_at < now()
  returning key
)
insert into inbox (event_type, queue_key, org_id, account_number, body, delivery_id, dedupe_key, source_id, traceparent, tracestate, lane)
select i.event_type, i.queue_key, i.org_id, i.account_number, i.body, i.delivery_id, i.dedupe_key, i.source_id, i.traceparent, i.tracestate, i.lane
from input i join fresh f on f.key = i.dedupe_key
-- Re-checks coalesce: one pending (or running: it stays pending until it ends) per source and org.
where i.lane <> $13 or not exists (
  select 1 from inbox p where p.state = 'pending' and p.queue_key = i.queue_key and p.org_id = i.org_id and p.lane = $13)
order by i.ord
returning id, dedupe_key`

/**
 * INSERT for one event, with the same rules. PostgreSQL plans the array form again on every execution
 * (its generic plan, with no array lengths known, never looks cheaper), which cost it 0.5 ms of CPU per
 * push when pushes come one at a time, as an ordered KafkaSource sends them; this form's generic plan
 * is reused (0.28 ms).
 */
const INSERT_ONE = `
with fresh as (
  insert into delivery_keys (key, expires_at)
  values ($1, case when $2::integer is null then null else now() + $2::integer * interval '1 millisecond' end)
  on conflict (key) do update set expires_at = excluded.expires_at
    where delivery_keys.expires_at is not null and delivery_keys.expires_at < now()
  returning key
)
insert into inbox (event_type, queue_key, org_id, account_number, body, delivery_id, dedupe_key, source_id, traceparent, tracestate, lane)
select $3, $4, $5, $6, $7::jsonb, $8, f.key, $9, $10, $11, $12::smallint
from fresh f
where $12::smallint <> $13::smallint or not exists (
  select 1 from inbox p where p.state = 'pending' and p.queue_key = $4 and p.org_id = $5 and p.lane = $13::smallint)
returning id, dedupe_key`

/** A stored event as operators and the history route see it. */
export interface EventRecord {
  id: number
  eventType: string
  orgId: string
  queueKey: string | null
  deliveryId: string | null
  /** Named by the event, learnt while running it, or that of the registration on its queue. */
  sourceId: string | null
  state: 'pending' | 'done' | 'ignored' | 'dead'
  outcome: string | null
  attempts: number
  lastError: string | null
  nextAttemptAt: Date
  receivedAt: Date
  finishedAt: Date | null
  /** The event this one is a replay of, and the replay of this one. */
  replayOf: number | null
  replayedAs: number | null
  body: Record<string, unknown>
  /** The trace of its ingest and processing. */
  traceId: string | null
  /** The STS session its verification assumed the customer's role under (their CloudTrail shows it). */
  roleSessionName: string | null
}

export type ReplayResult =
  | { ok: true, id: number }
  | { ok: false, reason: 'not_found' }
  | { ok: false, reason: 'pending' }
  | { ok: false, reason: 'replayed', replayedAs: number }

export interface Inbox {
  /**
   * Stores events durably. Concurrent callers share one transaction (group
   * commit); each promise settles only after that transaction committed.
   * Rejects with UnstorableError when the database refuses these events' data
   * (never because of another caller's), else with the transient failure.
   * An id is null for a redelivery, and for a re-check of a source that has one pending already
   * (coalesced: that one runs).
   */
  append: (events: IncomingEvent[]) => Promise<AppendResult>
  /** Called after each commit that stored new events. */
  onAppend: (listener: () => void) => void
  /** Also records the event's source once an attempt learnt it, and the failed attempt (same statement). */
  scheduleRetry: (id: number, attempts: number, nextAttemptAt: Date, error: string, sourceId: string | null, attempt?: AttemptWrite) => Promise<void>
  /** Whether an event of this type and org is pending on the queue (availability checks are coalesced). */
  hasPending: (orgId: string, queueKey: string, eventType: string) => Promise<boolean>
  /** The newest stored event of each of these dedupe keys: what a redelivery was a copy of. */
  idsOfDeliveries: (dedupeKeys: string[]) => Promise<Map<string, number>>
  /** Ends events no handler acts on; every other end goes through recordOutcome. */
  markIgnored: (ids: number[], outcome: string) => Promise<void>
  /** One event, in any org: for operators. */
  get: (id: number) => Promise<EventRecord | null>
  /** The events of an org's source (named, learnt, or on one of these queue keys), and those refused on its registrations, oldest first. */
  eventsOf: (orgId: string, sourceId: string, queueKeys: string[], limit: number, pendingOnly?: boolean) => Promise<EventRecord[]>
  /** The RoleSessionName of the newest event of an org's source that assumed its role (what its CloudTrail shows). */
  lastRoleSessionName: (orgId: string, sourceId: string) => Promise<string | null>
  /** Pending events of an org whose source nobody knows yet (nothing read from sources-api so far). */
  pendingWithoutSource: (orgId: string) => Promise<number>
  /**
   * Appends a copy of an ended event as a new event (at the end of its source's
   * queue) and marks the original `replayed_as` it, in one transaction.
   */
  replay: (id: number) => Promise<ReplayResult>
}

// The source of an event: its own, else its queue's (a source key, or the registration of its application key).
const SOURCE_OF = `coalesce(i.source_id,
  case when i.queue_key like '${SOURCE_KEY_PREFIX}%' then substr(i.queue_key, ${SOURCE_KEY_PREFIX.length + 1}) end,
  (select r.source_id from registrations r
   where i.queue_key like '${APP_KEY_PREFIX}%' and r.application_id = substr(i.queue_key, ${APP_KEY_PREFIX.length + 1})))`
export const RECORD_COLUMNS = `i.id, i.event_type, i.org_id, i.queue_key, i.delivery_id, i.state, i.outcome, i.attempts, i.last_error,
  i.next_attempt_at, i.received_at, i.finished_at, i.replay_of, i.replayed_as, i.body, ${SOURCE_OF} as source_of,
  i.traceparent, i.role_session_name`

export function toRecord (r: Record<string, any>): EventRecord {
  return {
    id: Number(r.id),
    eventType: r.event_type,
    orgId: r.org_id,
    queueKey: r.queue_key,
    deliveryId: r.delivery_id,
    sourceId: r.source_of,
    state: r.state,
    outcome: r.outcome,
    attempts: r.attempts,
    lastError: r.last_error,
    nextAttemptAt: r.next_attempt_at,
    receivedAt: r.received_at,
    finishedAt: r.finished_at,
    replayOf: r.replay_of === null ? null : Number(r.replay_of),
    replayedAs: r.replayed_as === null ? null : Number(r.replayed_as),
    body: r.body,
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
    sourceId: row.source_id ?? null,
    attempts: row.attempts,
    nextAttemptAt: row.next_attempt_at,
    receivedAt: row.received_at,
    lane: row.lane ?? LANES.customer,
    // Rows stored before trace contexts were: a trace of their own from now on.
    trace: row.traceparent === null ? newTraceContext() : { traceparent: row.traceparent, tracestate: row.tracestate }
  }
}

/** Rows of `width` values as `width` columns: the arrays the INSERT unnests. */
function transpose (rows: unknown[][], width: number): unknown[][] {
  return Array.from({ length: width }, (_, c) => rows.map(r => r[c]))
}

function unstorable (err: Error): Error {
  const code = refusedData(err)
  return code === null ? err : new UnstorableError(code, err.message)
}

export function createInbox (pool: pg.Pool, limits: InboxLimits = DEFAULT_LIMITS): Inbox {
  const waiting: Waiter[] = []
  let queuedEvents = 0
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
    const columns = (e: IncomingEvent): unknown[] => [e.dedupeKey, e.dedupeTtlMs, e.eventType, e.queueKey, e.orgId, e.accountNumber,
      JSON.stringify(e.body), e.deliveryId, sourceIdFor(e.eventType, e.body), e.trace!.traceparent, e.trace!.tracestate,
      laneOf({ eventType: e.eventType, body: e.body, replayOf: null })]
    // Named, so each connection parses them once: one runs for every push.
    const { rows } = await pool.query<{ id: string, dedupe_key: string }>(unique.length === 1
      ? { name: 'inbox-append-one', text: INSERT_ONE, values: [...columns(unique[0]), LANES.recheck] }
      : { name: 'inbox-append', text: INSERT, values: [...transpose(unique.map(columns), 12), LANES.recheck] })
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
        // Appends that waited past their deadline are refused rather than written late: their
        // senders retry, and a stuck database must not grow the queue behind it.
        const now = Date.now()
        for (let i = waiting.length - 1; i >= 0; i--) {
          if (waiting[i].deadline > now) continue
          const [late] = waiting.splice(i, 1)
          queuedEvents -= late.events.length
          late.reject(new InboxBusy(`the event store did not take the events within ${limits.maxWaitMs} ms`))
        }
        if (waiting.length === 0) break
        let count = 0
        let take = 0
        while (take < waiting.length && (take === 0 || count + waiting[take].events.length <= GROUP_LIMIT)) {
          count += waiting[take].events.length
          take++
        }
        const group = waiting.splice(0, take)
        queuedEvents -= count
        await writeGroup(group).catch(async (err: Error) => {
          if (refusedData(err) === null || group.length === 1) {
            for (const w of group) w.reject(unstorable(err))
            return
          }
          // One caller's data failed the statement all of them shared: write each alone, so that only
          // that caller hears of it and everyone else's events are stored (in the same order).
          for (const w of group) await writeGroup([w]).catch((e: Error) => { w.reject(unstorable(e)) })
        })
      }
    } finally {
      writing = false
    }
  }

  return {
    append (events) {
      if (queuedEvents + events.length > limits.maxQueuedEvents && queuedEvents > 0) {
        return Promise.reject(new InboxBusy(`the event store is busy (${queuedEvents} events waiting to be written)`))
      }
      queuedEvents += events.length
      return new Promise<AppendResult>((resolve, reject) => {
        waiting.push({ events, resolve, reject, deadline: Date.now() + limits.maxWaitMs })
        if (!writing) void drain()
      })
    },
    onAppend (listener) {
      listeners.push(listener)
    },
    async scheduleRetry (id, attempts, nextAttemptAt, error, sourceId, attempt) {
      const update = 'update inbox set attempts = $2, next_attempt_at = $3, last_error = $4, source_id = coalesce(source_id, $5) where id = $1'
      const values = [id, attempts, nextAttemptAt, error, sourceId]
      // The attempt rides on the retry's own statement: no round trip of its own.
      if (attempt === undefined) await pool.query(update, values)
      else await pool.query(`with attempt as (${insertAttempt(6, '$1::bigint')}) ${update}`, [...values, ...attemptValues(attempt)])
    },
    async idsOfDeliveries (dedupeKeys) {
      const { rows } = await pool.query<{ dedupe_key: string, id: string }>(
        'select dedupe_key, max(id) as id from inbox where dedupe_key = any($1::text[]) group by dedupe_key', [dedupeKeys])
      return new Map(rows.map(r => [r.dedupe_key, Number(r.id)]))
    },
    async get (id) {
      const { rows } = await pool.query(`select ${RECORD_COLUMNS} from inbox i where i.id = $1`, [id])
      return rows.length > 0 ? toRecord(rows[0]) : null
    },
    async eventsOf (orgId, sourceId, queueKeys, limit, pendingOnly = false) {
      const { rows } = await pool.query(
        // The org's own events, and other orgs' events refused on its registrations (its audit lines).
        `select ${RECORD_COLUMNS} from inbox i where i.org_id = $1 and (i.source_id = $2 or i.queue_key = any($3::text[]))
         ${pendingOnly ? "and i.state = 'pending'" : ''}
         union
         select ${RECORD_COLUMNS} from inbox i join registration_audit a on a.event_id = i.id
         where a.org_id = $1 and i.queue_key = any($3::text[]) ${pendingOnly ? "and i.state = 'pending'" : ''}
         order by id limit $4`, [orgId, sourceId, queueKeys, limit])
      return rows.map(toRecord)
    },
    async lastRoleSessionName (orgId, sourceId) {
      const { rows } = await pool.query<{ name: string }>(
        `select role_session_name as name from inbox where org_id = $1 and source_id = $2 and role_session_name is not null
         order by id desc limit 1`, [orgId, sourceId])
      return rows[0]?.name ?? null
    },
    async pendingWithoutSource (orgId) {
      const { rows } = await pool.query<{ n: number }>(
        `select count(*)::int as n from inbox i where i.state = 'pending' and i.org_id = $1 and ${SOURCE_OF} is null`, [orgId])
      return rows[0].n
    },
    async replay (id) {
      const result = await withTransaction(pool, async (client): Promise<ReplayResult> => {
        // Locked, so that two operators replaying at once make one copy.
        const { rows } = await client.query('select state, replayed_as, event_type, body from inbox where id = $1 for update', [id])
        if (rows.length === 0) return { ok: false, reason: 'not_found' }
        if (rows[0].state === 'pending') return { ok: false, reason: 'pending' }
        if (rows[0].replayed_as !== null) return { ok: false, reason: 'replayed', replayedAs: Number(rows[0].replayed_as) }
        // A replay is a new run, started by an operator: a trace of its own (the original's has ended).
        const inserted = await client.query<{ id: string }>(
          `insert into inbox (event_type, queue_key, org_id, account_number, body, delivery_id, dedupe_key, source_id, replay_of, traceparent, lane)
           select event_type, queue_key, org_id, account_number, body, delivery_id, $2, source_id, id, $3, $4 from inbox where id = $1
           returning id`, [id, `replay:${id}:${randomUUID()}`, newTraceContext().traceparent, laneOf({ eventType: rows[0].event_type, body: rows[0].body, replayOf: id })])
        const copy = Number(inserted.rows[0].id)
        await client.query('update inbox set replayed_as = $2 where id = $1', [id, copy])
        return { ok: true, id: copy }
      })
      if (result.ok) for (const l of listeners) l()
      return result
    },
    async hasPending (orgId, queueKey, eventType) {
      const { rowCount } = await pool.query({
        name: 'inbox-has-pending',
        text: 'select 1 from inbox where queue_key = $1 and org_id = $2 and state = \'pending\' and event_type = $3 limit 1',
        values: [queueKey, orgId, eventType]
      })
      return rowCount === 1
    },
    async markIgnored (ids, outcome) {
      await pool.query(
        'update inbox set state = \'ignored\', outcome = $2, finished_at = now() where id = any($1::bigint[]) and state = \'pending\'',
        [ids, outcome])
    }
  }
}
