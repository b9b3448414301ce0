import pg from 'pg'
import type { Logger } from '../log.js'
import { startEmbeddedPostgres } from './embedded-postgres.js'
import { migrations } from './migrations.js'

export interface Database {
  pool: pg.Pool
  embedded: boolean
  close: () => Promise<void>
}

export interface DatabaseOptions {
  databaseUrl?: string
  dataDir: string
  embeddedPort: number
  log: Logger
}

// Any number with a fixed value works: it only serialises concurrent migrators.
const MIGRATION_LOCK = 4242_0001

export async function migrate (pool: pg.Pool): Promise<number> {
  const client = await pool.connect()
  try {
    await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK])
    await client.query('create table if not exists schema_migrations (version integer primary key, applied_at timestamptz not null default now())')
    const { rows } = await client.query<{ version: number }>('select coalesce(max(version), 0) as version from schema_migrations')
    const current = rows[0].version
    for (let version = current + 1; version <= migrations.length; version++) {
      await client.query('begin')
      try {
        await client.query(migrations[version - 1])
        await client.query('insert into schema_migrations (version) values ($1)', [version])
        await client.query('commit')
      } catch (err) {
        await client.query('rollback')
        throw err
      }
    }
    return migrations.length - current
  } finally {
    await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => {})
    client.release()
  }
}

/** Connects to DATABASE_URL, or starts the embedded server under DATA_DIR; then migrates. */
export async function openDatabase ({ databaseUrl, dataDir, embeddedPort, log }: DatabaseOptions): Promise<Database> {
  const embedded = databaseUrl === undefined
    ? await startEmbeddedPostgres({ dataDir, port: embeddedPort, log })
    : undefined
  const pool = new pg.Pool({ connectionString: databaseUrl ?? embedded!.url, max: 20 })
  // An idle client losing its server must not crash the process; the next query reports it.
  pool.on('error', err => log.warn({ err }, 'idle database connection lost'))
  try {
    const applied = await migrate(pool)
    log.info({ applied, embedded: embedded !== undefined }, 'database ready')
  } catch (err) {
    await pool.end()
    await embedded?.stop()
    throw err
  }
  return {
    pool,
    embedded: embedded !== undefined,
    async close () {
      await pool.end()
      await embedded?.stop()
    }
  }
}
