import type pg from 'pg'

export interface Replicas {
  /**
   * Says this replica is alive, forgets replicas silent for longer than `ttlMs`, and returns how
   * many are alive (this one included): what the upstream rate budgets are shared by.
   */
  heartbeat: (owner: string, ttlMs: number) => Promise<number>
  /** This replica stops: the others take its share at their next heartbeat. */
  leave: (owner: string) => Promise<void>
}

export function createReplicas (pool: pg.Pool): Replicas {
  return {
    async heartbeat (owner, ttlMs) {
      const { rows } = await pool.query<{ live: number }>({
        name: 'replica-heartbeat',
        text: `with seen as (
                 insert into replicas (owner, seen_at) values ($1, now())
                 on conflict (owner) do update set seen_at = excluded.seen_at
               ), forgotten as (
                 delete from replicas where seen_at < now() - $2 * interval '1 millisecond' and owner <> $1
               )
               select 1 + count(*)::int as live from replicas
               where owner <> $1 and seen_at >= now() - $2 * interval '1 millisecond'`,
        values: [owner, ttlMs]
      })
      return rows[0].live
    },
    async leave (owner) {
      await pool.query('delete from replicas where owner = $1', [owner])
    }
  }
}
