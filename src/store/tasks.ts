import type pg from 'pg'

/** A background task of an operator, kept in PostgreSQL so that any replica answers for it. */
export interface TaskRecord {
  id: number
  kind: string
  /** As stored: running while its replica works on it. */
  state: 'running' | 'done' | 'failed'
  params: Record<string, unknown>
  matched: number
  /** Dead letters copied into the inbox so far. */
  replayed: number
  /** Selected, but replayed meanwhile by someone else (or no longer a dead letter). */
  skipped: number
  /** Of the copies: ended done (or ignored), ended dead again, still pending. */
  done: number
  failed: number
  pending: number
  error: string | null
  owner: string | null
  createdAt: Date
  finishedAt: Date | null
  /** The replica working on it has not said anything for this long. */
  silentMs: number
}

export interface Tasks {
  create: (kind: string, params: Record<string, unknown>, eventIds: number[], owner: string) => Promise<number>
  /** Progress: adds the copies made and the ids skipped. */
  progress: (id: number, copies: number[], skipped: number) => Promise<void>
  finish: (id: number, state: 'done' | 'failed', error: string | null) => Promise<void>
  get: (id: number) => Promise<TaskRecord | null>
}

export function createTasks (pool: pg.Pool): Tasks {
  return {
    async create (kind, params, eventIds, owner) {
      const { rows } = await pool.query<{ id: string }>(
        'insert into operator_tasks (kind, params, event_ids, matched, owner) values ($1, $2, $3, $4, $5) returning id',
        [kind, params, eventIds, eventIds.length, owner])
      return Number(rows[0].id)
    },
    async progress (id, copies, skipped) {
      await pool.query(`update operator_tasks set copy_ids = copy_ids || $2::bigint[], replayed = replayed + cardinality($2::bigint[]),
        skipped = skipped + $3, heartbeat_at = now() where id = $1`, [id, copies, skipped])
    },
    async finish (id, state, error) {
      await pool.query('update operator_tasks set state = $2, error = $3, finished_at = now(), heartbeat_at = now() where id = $1', [id, state, error])
    },
    async get (id) {
      const { rows } = await pool.query(`
        select t.id, t.kind, t.state, t.params, t.matched, t.replayed, t.skipped, t.error, t.owner, t.created_at, t.finished_at,
          (extract(epoch from now() - t.heartbeat_at) * 1000)::float8 as silent_ms,
          count(*) filter (where i.state in ('done', 'ignored'))::int as done,
          count(*) filter (where i.state = 'dead')::int as failed,
          count(*) filter (where i.state = 'pending')::int as pending
        from operator_tasks t left join inbox i on i.id = any(t.copy_ids)
        where t.id = $1 group by t.id`, [id])
      if (rows.length === 0) return null
      const r = rows[0]
      return {
        id: Number(r.id),
        kind: r.kind,
        state: r.state,
        params: r.params,
        matched: r.matched,
        replayed: r.replayed,
        skipped: r.skipped,
        done: r.done,
        failed: r.failed,
        pending: r.pending,
        error: r.error,
        owner: r.owner,
        createdAt: r.created_at,
        finishedAt: r.finished_at,
        silentMs: r.silent_ms
      }
    }
  }
}
