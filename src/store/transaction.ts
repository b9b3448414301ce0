import type pg from 'pg'

/**
 * PostgreSQL ends a transaction left idle this long (idle_in_transaction_session_timeout, set on every
 * connection): work inside one must not wait on anything else (an upstream, a broker) for that long.
 */
export const TRANSACTION_IDLE_LIMIT_MS = 60_000

/** Runs `work` between begin and commit on `client`; any throw rolls back and rethrows. */
export async function inTransaction<T> (client: pg.PoolClient, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  await client.query('begin')
  try {
    const result = await work(client)
    await client.query('commit')
    return result
  } catch (err) {
    // A failed rollback (the connection is gone) must not hide why the work failed.
    await client.query('rollback').catch(() => {})
    throw err
  }
}

/** One transaction on a connection of its own, given back to the pool whatever happens. */
export async function withTransaction<T> (pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect()
  // The pool listens for errors only on idle connections. A checked-out one that the server ends while
  // no query runs on it (an idle-in-transaction timeout, a restart) emits 'error' to nobody, and that
  // would crash the process: here the next query (or the commit) fails instead, and the connection is
  // dropped rather than given back.
  let lost: Error | undefined
  const onError = (err: Error): void => { lost = err }
  client.on('error', onError)
  try {
    return await inTransaction(client, work)
  } finally {
    client.off('error', onError)
    client.release(lost)
  }
}
