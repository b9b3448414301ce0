import type pg from 'pg'
import { attemptsOf, type AttemptRecord } from './attempts.js'
import { listDeadLetters, selectDeadLetters, type DeadLetter, type DeadLetterFilter } from './dead-letters.js'
import type { Database } from './db.js'
import type { DatabaseHealth } from './health.js'
import { createHolds, type Holds } from './holds.js'
import { createInbox, type Inbox, type InboxLimits } from './inbox.js'
import { createLeases, type Leases } from './leases.js'
import { createOutbox, type Outbox } from './outbox.js'
import { recordOutcome, type EventEnd, type Outcome } from './outcomes.js'
import { createReconcileStore, type ReconcileStore } from './reconcile.js'
import { createRegistrations, type Registrations } from './registrations.js'
import { createReplicas, type Replicas } from './replicas.js'
import { pruneOlderThan, type Pruned } from './retention.js'
import { createStats, type StoreStats } from './stats.js'
import { createTasks, type TaskRecord, type Tasks } from './tasks.js'

/**
 * The store's front door: every table and column name lives behind it, in src/store/.
 * The store drives nothing; the pipeline, the routes and the plugins call it.
 */
export interface Store {
  /** For the store's own modules and for tests that inspect rows; nothing else in src/ or routes/ queries it. */
  pool: pg.Pool
  /** The embedded PostgreSQL, which no other process shares. */
  embedded: boolean
  /** Whether the database is there, watched on a timer (the store plugin starts and stops it). */
  health: DatabaseHealth
  inbox: Inbox
  outbox: Outbox
  registrations: Registrations
  /** Reconciliation runs, their drift, and what a sweep reads. */
  reconcile: ReconcileStore
  stats: StoreStats
  /** Operators' background tasks (bulk replays). */
  tasks: Tasks
  /** Every recorded attempt of these events, grouped by event, in order. */
  attemptsOf: (eventIds: number[]) => Promise<Map<number, AttemptRecord[]>>
  deadLetters: {
    /** A page of the dead letters a filter selects, with the upstream and error of each one's last attempt. */
    list: (filter: DeadLetterFilter, includeReplayed: boolean, limit: number, offset: number) => Promise<{ count: number, data: DeadLetter[] }>
    /** The ids a bulk replay of this filter replays, oldest first: the dry run and the real run ask the same. */
    select: (filter: DeadLetterFilter, limit: number) => Promise<number[]>
  }
  /** Upstreams' holds (Retry-After), told to and heard from the other replicas through PostgreSQL notifications. */
  holds: Holds
  /** The live replicas, by their heartbeats: what the upstream rate budgets are shared by. */
  replicas: Replicas
  /** This replica's per-source leases, as `owner`. */
  leases: (owner: string, leaseMs: number) => Leases
  /** Registration, status and the event's end, in one lease-checked transaction. */
  recordOutcome: (end: EventEnd, outcome: Outcome) => Promise<void>
  /** Forgets ended history older than `days`. */
  prune: (days: number) => Promise<Pruned>
}

export function createStore (db: Pick<Database, 'pool' | 'embedded'>, health: DatabaseHealth, inboxLimits?: InboxLimits): Store {
  const { pool } = db
  return {
    pool,
    embedded: db.embedded,
    health,
    inbox: createInbox(pool, inboxLimits),
    outbox: createOutbox(pool),
    registrations: createRegistrations(pool),
    reconcile: createReconcileStore(pool),
    stats: createStats(pool),
    tasks: createTasks(pool),
    attemptsOf: async ids => await attemptsOf(pool, ids),
    deadLetters: {
      list: async (filter, includeReplayed, limit, offset) => await listDeadLetters(pool, filter, includeReplayed, limit, offset),
      select: async (filter, limit) => await selectDeadLetters(pool, filter, limit)
    },
    holds: createHolds(pool),
    replicas: createReplicas(pool),
    leases: (owner, leaseMs) => createLeases(pool, owner, leaseMs),
    recordOutcome: async (end, outcome) => { await recordOutcome(pool, end, outcome) },
    prune: async days => await pruneOlderThan(pool, days)
  }
}

export type { AttemptRecord, DatabaseHealth, DeadLetter, DeadLetterFilter, Holds, Inbox, Leases, Outbox, ReconcileStore, Registrations, Replicas, StoreStats, TaskRecord, Tasks }
