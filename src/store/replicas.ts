import type pg from 'pg'

/** The live replicas (this one included) and the work they hold, by their last heartbeats. */
export interface ReplicaCensus { live: number, demand: number }

export interface Replicas {
  /**
   * Says this replica is alive and holds `demand` events, forgets replicas silent for longer than
   * `ttlMs`, and returns how many are alive and the events they hold (this one's included): what the
   * upstream rate budgets are shared by.
   */
  heartbeat: (owner: string, ttlMs: number, demand: number) => Promise<ReplicaCensus>
  /** This replica stops: the others take its share at their next heartbeat. */
  leave: (owner: string) => Promise<void>
}

export function createReplicas (pool: pg.Pool): Replicas {
  return {
    async heartbeat (owner, ttlMs, demand) {
      const { rows } = await pool.query<ReplicaCensus>({
        name: 'replica-heartbeat',
        text: `with seen as (
                 insert into replicas (owner, seen_at, demand) values ($1, now(), $3)
                 on conflict (owner) do update set seen_at = excluded.seen_at, demand = excluded.demand
               ), forgotten as (
                 delete from replicas where seen_at < now() - $2 * interval '1 millisecond' and owner <> $1
               )
               select 1 + count(*)::int as live, $3 + coalesce(sum(demand), 0)::int as demand from replicas
               where owner <> $1 and seen_at >= now() - $2 * interval '1 millisecond'`,
        values: [owner, ttlMs, demand]
      })
      return rows[0]
    },
    async leave (owner) {
      await pool.query('delete from replicas where owner = $1', [owner])
    }
  }
}
