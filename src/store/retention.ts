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

export interface Pruned { events: number, statuses: number, deliveryKeys: number, attempts: number, tasks: number, reconcileRuns: number }

/**
 * Forgets ended events, sent statuses, delivery keys, attempts, finished operator tasks and
 * reconciliation runs older than `days`. Registrations, pending events, dead letters (with their
 * attempts) and tombstones are kept; an event retried for ever (cloudoreg's own misconfiguration)
 * keeps its recent attempts only; reconciliation runs still running are kept (their drift goes
 * with the runs that are pruned).
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
    attempts: await deleteInBatches(pool, `delete from event_attempts where id in (
      select a.id from event_attempts a where a.finished_at < now() - $1 * interval '1 day'
        and not exists (select 1 from inbox i where i.id = a.event_id and i.state = 'dead') limit $2)`, cutoff),
    tasks: await deleteInBatches(pool, `delete from operator_tasks where id in (
      select id from operator_tasks where state <> 'running' and created_at < now() - $1 * interval '1 day' limit $2)`, cutoff),
    reconcileRuns: await deleteInBatches(pool, `delete from reconcile_runs where id in (
      select id from reconcile_runs where state <> 'running' and started_at < now() - $1 * interval '1 day' limit $2)`, cutoff)
  }
}
