import type pg from 'pg'

const BATCH = 1000

/** Deletes in small batches, so that pruning never holds long locks against ingest. */
async function deleteInBatches (pool: pg.Pool, sql: string, params: unknown[]): Promise<number> {
  let total = 0
  for (;;) {
    const { rowCount } = await pool.query(sql, [...params, BATCH])
    total += rowCount ?? 0
    if ((rowCount ?? 0) < BATCH) return total
  }
}

export interface Pruned { events: number, statuses: number, deliveryKeys: number, reconcileRuns: number }

/**
 * Forgets ended events, sent statuses and delivery keys older than `days`.
 * Registrations, pending events, dead letters and tombstones are kept; so are reconciliation runs
 * still running (their drift goes with the runs that are pruned).
 */
export async function pruneOlderThan (pool: pg.Pool, days: number): Promise<Pruned> {
  const cutoff = [days]
  return {
    events: await deleteInBatches(pool, `delete from inbox where id in (
      select id from inbox where state in ('done', 'ignored') and finished_at < now() - $1 * interval '1 day' limit $2)`, cutoff),
    statuses: await deleteInBatches(pool, `delete from status_outbox where id in (
      select id from status_outbox where (sent_at is not null or superseded) and created_at < now() - $1 * interval '1 day' limit $2)`, cutoff),
    deliveryKeys: await deleteInBatches(pool, `delete from delivery_keys where key in (
      select key from delivery_keys where (expires_at is not null and expires_at < now()) or created_at < now() - $1 * interval '1 day' limit $2)`, cutoff),
    reconcileRuns: await deleteInBatches(pool, `delete from reconcile_runs where id in (
      select id from reconcile_runs where state <> 'running' and started_at < now() - $1 * interval '1 day' limit $2)`, cutoff)
  }
}
