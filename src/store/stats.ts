import type pg from 'pg'

export interface CountAndAge { n: number, age: number }

export interface StoreStats {
  /** Whether the database answers within `timeoutMs`; throws if not. */
  ping: (timeoutMs: number) => Promise<void>
  /** Whether more than `limit` events are pending (counts no further than limit + 1). */
  backlogOver: (limit: number) => Promise<boolean>
  /** Pending events, the age of the oldest, and how long the longest-due one has been due (nobody took it), in seconds. */
  inbox: () => Promise<CountAndAge & { due: number }>
  /** Unsent status messages and the age of the oldest, in seconds. */
  outbox: () => Promise<CountAndAge>
  /** Status messages parked as undeliverable, and the age of the oldest parking. */
  parked: () => Promise<CountAndAge>
  /** Dead letters not replayed, and the age of the newest, in seconds. */
  deadLetters: () => Promise<CountAndAge>
  /** Live leases, and the replicas holding them. */
  leases: () => Promise<{ n: number, holders: number }>
}

/** Resolves when the database answers a trivial query within `timeoutMs`; throws otherwise. */
export async function ping (pool: pg.Pool, timeoutMs: number): Promise<void> {
  await pool.query({ text: 'select 1', query_timeout: timeoutMs } as { text: string })
}

/** What probes, load shedding and metrics ask of the store. */
export function createStats (pool: pg.Pool): StoreStats {
  return {
    ping: async timeoutMs => { await ping(pool, timeoutMs) },
    async backlogOver (limit) {
      const { rows } = await pool.query<{ n: number }>(
        'select count(*)::int as n from (select 1 from inbox where state = \'pending\' limit $1) backlog', [limit + 1])
      return rows[0].n > limit
    },
    // prom-client collects gauges concurrently: a count and its age share one query per scrape.
    inbox: sharedQuery(pool, `select count(*) as n, coalesce(extract(epoch from now() - min(received_at)), 0) as age,
                                coalesce(extract(epoch from now() - min(next_attempt_at) filter (where next_attempt_at <= now())), 0) as due
                              from inbox where state = 'pending'`),
    outbox: sharedQuery(pool, `select count(*) as n, coalesce(extract(epoch from now() - min(created_at)), 0) as age
                               from status_outbox where sent_at is null and not superseded and parked_at is null`),
    parked: sharedQuery(pool, `select count(*) as n, coalesce(extract(epoch from now() - min(parked_at)), 0) as age
                               from status_outbox where parked_at is not null and sent_at is null and not superseded`),
    deadLetters: sharedQuery(pool, `select count(*) as n, coalesce(extract(epoch from now() - max(finished_at)), 0) as age
                                    from inbox where state = 'dead' and replayed_as is null`),
    leases: sharedQuery(pool, 'select count(*) as n, count(distinct owner) as holders from source_leases where expires_at > now()')
  }
}

function sharedQuery<T> (pool: pg.Pool, sql: string): () => Promise<T> {
  let inFlight: Promise<T> | undefined
  return () => {
    inFlight ??= pool.query(sql)
      .then(({ rows }) => Object.fromEntries(Object.entries(rows[0]).map(([k, v]) => [k, Number(v)])) as T)
      .finally(() => { setImmediate(() => { inFlight = undefined }) })
    return inFlight
  }
}
