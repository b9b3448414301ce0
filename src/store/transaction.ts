import type pg from 'pg'

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
  try {
    return await inTransaction(client, work)
  } finally {
    client.release()
  }
}
