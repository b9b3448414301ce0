import type pg from 'pg'
import { noDrift, type DriftCounts, type DriftItem } from '../reconcile/drift.js'
import { toRegistration, REGISTRATION_COLUMNS, type Registration } from './registrations.js'
import { withTransaction } from './transaction.js'

/** A registration as a sweep compares it: with the last status cloudoreg queued for its application. */
export interface SweptRegistration extends Registration {
  /** `available` / `unavailable`, or null when nothing was ever reported. */
  lastStatus: string | null
  /** Whether that status was sent (an unsent one may not have reached sources-api yet). */
  lastStatusSent: boolean
}

export interface ReconcileRun {
  id: string
  dryRun: boolean
  scheduled: boolean
  state: 'running' | 'done' | 'failed'
  startedAt: Date
  finishedAt: Date | null
  checked: number
  total: number | null
  counts: DriftCounts
  /** Drift items found; at most the stored list's bound are kept. */
  driftFound: number
  repairsQueued: number
  error: string | null
  drift: DriftItem[]
}

export interface RunProgress {
  checked: number
  total: number | null
  counts: DriftCounts
  /** Found since the last progress write, in order; stored while the run's list has room. */
  newDrift: DriftItem[]
  repairsQueued: number
}

export interface ReconcileStore {
  create: (r: { id: string, dryRun: boolean, scheduled: boolean, owner: string }) => Promise<void>
  /** Writes progress (and the drift items the bounded list still takes), and marks the run alive. */
  progress: (id: string, p: RunProgress) => Promise<void>
  finish: (id: string, state: 'done' | 'failed', error: string | null) => Promise<void>
  /** A run with its stored drift (a run whose replica stopped beating for `staleMs` reads as failed). */
  get: (id: string, staleMs: number) => Promise<ReconcileRun | null>
  /** Counts of the last dry run that finished, for the metrics. */
  lastDryRun: () => Promise<{ counts: DriftCounts, finishedAt: Date } | null>
  /** When the last scheduled run started, if any did. */
  lastScheduledStart: () => Promise<Date | null>
  /** Every org cloudoreg holds registrations of. */
  orgs: () => Promise<string[]>
  /** One org's registrations with their last status; and the applications it destroyed (tombstones). */
  orgRegistrations: (orgId: string) => Promise<{ registrations: SweptRegistration[], destroyed: Set<string> }>
  /** Which of these queue keys have events pending (those sources are in flux, not drifting). */
  pendingKeys: (keys: string[]) => Promise<Set<string>>
  /** How many of these events have not ended yet. */
  pendingOf: (ids: number[]) => Promise<number>
}

/** A run's stored drift list holds at most this many items; `counts` always counts them all. */
export const DRIFT_LIST_LIMIT = 1000

export function createReconcileStore (pool: pg.Pool): ReconcileStore {
  return {
    async create ({ id, dryRun, scheduled, owner }) {
      await pool.query('insert into reconcile_runs (id, dry_run, scheduled, state, owner, counts) values ($1, $2, $3, \'running\', $4, $5)',
        [id, dryRun, scheduled, owner, JSON.stringify(noDrift())])
    },
    async progress (id, p) {
      await withTransaction(pool, async client => {
        const { rows: [run] } = await client.query<{ drift_found: number }>(
          `update reconcile_runs set checked = $2, total = $3, counts = $4, repairs_queued = $5, heartbeat_at = now(),
             drift_found = drift_found + $6 where id = $1 returning drift_found - $6 as drift_found`,
          [id, p.checked, p.total, JSON.stringify(p.counts), p.repairsQueued, p.newDrift.length])
        const room = Math.max(0, DRIFT_LIST_LIMIT - run.drift_found)
        const kept = p.newDrift.slice(0, room)
        if (kept.length === 0) return
        await client.query(
          `insert into reconcile_drift (run_id, seq, class, source_id, application_id, org_id, rhsm_account_id, detail, repair)
           select $1, $2 + ord, class, source_id, application_id, org_id, rhsm_account_id, detail, repair from unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
             with ordinality as t(class, source_id, application_id, org_id, rhsm_account_id, detail, repair, ord)`,
          [id, run.drift_found, kept.map(d => d.class), kept.map(d => d.sourceId), kept.map(d => d.applicationId), kept.map(d => d.orgId),
            kept.map(d => d.rhsmAccountId), kept.map(d => d.detail), kept.map(d => d.repair)])
      })
    },
    async finish (id, state, error) {
      await pool.query('update reconcile_runs set state = $2, error = $3, finished_at = now(), heartbeat_at = now() where id = $1', [id, state, error])
    },
    async get (id, staleMs) {
      const { rows: [r] } = await pool.query(
        'select *, state = \'running\' and heartbeat_at < now() - $2 * interval \'1 millisecond\' as abandoned from reconcile_runs where id = $1', [id, staleMs])
      if (r === undefined) return null
      const { rows } = await pool.query('select * from reconcile_drift where run_id = $1 order by seq', [id])
      return {
        id: r.id,
        dryRun: r.dry_run,
        scheduled: r.scheduled,
        state: r.abandoned === true ? 'failed' : r.state,
        startedAt: r.started_at,
        finishedAt: r.finished_at,
        checked: r.checked,
        total: r.total,
        counts: { ...noDrift(), ...r.counts },
        driftFound: r.drift_found,
        repairsQueued: r.repairs_queued,
        error: r.abandoned === true ? 'abandoned: the replica running it stopped before it finished' : r.error,
        drift: rows.map(d => ({
          class: d.class,
          sourceId: d.source_id,
          applicationId: d.application_id,
          orgId: d.org_id,
          rhsmAccountId: d.rhsm_account_id,
          detail: d.detail,
          repair: d.repair
        }))
      }
    },
    async lastDryRun () {
      const { rows: [r] } = await pool.query(
        'select counts, finished_at from reconcile_runs where dry_run and state = \'done\' order by finished_at desc limit 1')
      return r === undefined ? null : { counts: { ...noDrift(), ...r.counts }, finishedAt: r.finished_at }
    },
    async lastScheduledStart () {
      const { rows: [r] } = await pool.query('select max(started_at) as at from reconcile_runs where scheduled')
      return r.at
    },
    async orgs () {
      const { rows } = await pool.query<{ org_id: string }>('select distinct org_id from registrations')
      return rows.map(r => r.org_id)
    },
    async orgRegistrations (orgId) {
      const { rows } = await pool.query(
        `select ${REGISTRATION_COLUMNS}, s.status as last_status, s.sent_at is not null as last_status_sent
         from registrations r
         left join lateral (
           select status, sent_at from status_outbox o where o.application_id = r.application_id and o.org_id = r.org_id and not o.superseded
           order by o.id desc limit 1
         ) s on true
         where r.org_id = $1`, [orgId])
      const destroyed = await pool.query<{ application_id: string }>('select application_id from destroyed_applications where org_id = $1', [orgId])
      return {
        registrations: rows.map(r => ({ ...toRegistration(r), lastStatus: r.last_status, lastStatusSent: r.last_status_sent === true })),
        destroyed: new Set(destroyed.rows.map(r => r.application_id))
      }
    },
    async pendingKeys (keys) {
      if (keys.length === 0) return new Set()
      const { rows } = await pool.query<{ queue_key: string }>(
        'select distinct queue_key from inbox where state = \'pending\' and queue_key = any($1::text[])', [keys])
      return new Set(rows.map(r => r.queue_key))
    },
    async pendingOf (ids) {
      if (ids.length === 0) return 0
      const { rows } = await pool.query<{ n: number }>('select count(*)::int as n from inbox where state = \'pending\' and id = any($1::bigint[])', [ids])
      return rows[0].n
    }
  }
}
