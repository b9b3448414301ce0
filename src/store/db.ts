import { readFileSync } from 'node:fs'
import type { ConnectionOptions } from 'node:tls'
import pg from 'pg'
import { ConfigError } from '../config-error.js'
import type { Logger } from '../log.js'
import { startEmbeddedPostgres } from './embedded-postgres.js'
import { migrations } from './migrations.js'
import { inTransaction, TRANSACTION_IDLE_LIMIT_MS } from './transaction.js'

export interface Database {
  pool: pg.Pool
  embedded: boolean
  /** The embedded server's data directory (absolute); undefined with DATABASE_URL. */
  dataDir?: string
  close: () => Promise<void>
}

export interface DatabaseOptions {
  databaseUrl?: string
  /** PEM file of the CA that signed the server's certificate (DATABASE_CA_PATH). */
  caPath?: string
  dataDir: string
  embeddedPort: number
  /** Connections at most (DATABASE_POOL_SIZE). */
  poolSize: number
  /** How long a query may wait for a connection (DATABASE_TIMEOUT_MS). */
  timeoutMs: number
  log: Logger
}

/** No statement of the service runs this long; one that does is stuck, and holds a connection. */
const STATEMENT_TIMEOUT_MS = 60_000

// Any number with a fixed value works: it only serialises concurrent migrators.
const MIGRATION_LOCK = 4242_0001

export async function migrate (pool: pg.Pool): Promise<number> {
  const client = await pool.connect()
  try {
    // A migration may rewrite a large table, and another replica's migration may hold the lock a while.
    await client.query('set statement_timeout = 0')
    await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK])
    await client.query('create table if not exists schema_migrations (version integer primary key, applied_at timestamptz not null default now())')
    const { rows } = await client.query<{ version: number }>('select coalesce(max(version), 0) as version from schema_migrations')
    const current = rows[0].version
    for (let version = current + 1; version <= migrations.length; version++) {
      await inTransaction(client, async tx => {
        await tx.query(migrations[version - 1])
        await tx.query('insert into schema_migrations (version) values ($1)', [version])
      })
    }
    return migrations.length - current
  } finally {
    await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => {})
    await client.query('reset statement_timeout').catch(() => {})
    client.release()
  }
}

const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']
// Every parameter from which pg-connection-string would build its own `ssl` option.
const TLS_PARAMS = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'ssl', 'uselibpqcompat', 'sslnegotiation']

/**
 * The pool's connection string and TLS options, with libpq's meaning of sslmode.
 * pg 8 lets any TLS parameter in a connection string replace the whole `ssl` option given beside it
 * (node-postgres#2380: the CA is dropped and verify-full against the system CAs fails), and treats
 * require and verify-ca as verify-full. So when DATABASE_URL has an sslmode, or a CA file is named,
 * the TLS parameters are taken out of the URL and become one `ssl` option here:
 * disable, allow: no TLS (pg cannot fall back, so allow never tries it);
 * prefer: TLS, certificate not checked (pg cannot fall back to plaintext either);
 * require: TLS; with a CA the chain is checked, not the host name (as libpq does), without one nothing;
 * verify-ca: chain checked against the CA, host name not; a CA is required;
 * verify-full (also a CA with no sslmode): chain and host name checked, against the CA if named,
 * else the system's.
 */
export function poolConnection (databaseUrl: string, caPath?: string): { connectionString: string, ssl?: ConnectionOptions | false } {
  if (!/[?&]sslmode=/.test(databaseUrl) && caPath === undefined) return { connectionString: databaseUrl }
  let url: URL
  try {
    url = new URL(databaseUrl)
  } catch {
    throw new ConfigError('Invalid configuration: DATABASE_URL is not a valid URL') // the URL holds a password: not quoted
  }
  const params = url.searchParams
  const mode = params.get('sslmode') ?? 'verify-full'
  if (!SSL_MODES.includes(mode)) {
    throw new ConfigError(`Invalid configuration: DATABASE_URL sslmode=${mode} is not one of ${SSL_MODES.join(', ')}`)
  }
  if (params.has('ssl') || params.has('sslnegotiation')) {
    throw new ConfigError('Invalid configuration: DATABASE_URL has both sslmode (or DATABASE_CA_PATH) and ssl or sslnegotiation; use sslmode alone')
  }
  const caFile = caPath ?? params.get('sslrootcert') ?? undefined
  const certFile = params.get('sslcert') ?? undefined
  const keyFile = params.get('sslkey') ?? undefined
  for (const name of TLS_PARAMS) params.delete(name)
  const connectionString = url.toString()
  if (mode === 'disable' || mode === 'allow') return { connectionString, ssl: false }

  const ssl: ConnectionOptions = {}
  if (caFile !== undefined) ssl.ca = readPem(caFile, caPath !== undefined ? 'DATABASE_CA_PATH' : 'DATABASE_URL sslrootcert')
  if (certFile !== undefined) ssl.cert = readPem(certFile, 'DATABASE_URL sslcert')
  if (keyFile !== undefined) ssl.key = readPem(keyFile, 'DATABASE_URL sslkey')
  const skipHostName = (): undefined => undefined
  if (mode === 'prefer' || (mode === 'require' && ssl.ca === undefined)) ssl.rejectUnauthorized = false
  if (mode === 'require' && ssl.ca !== undefined) ssl.checkServerIdentity = skipHostName
  if (mode === 'verify-ca') {
    if (ssl.ca === undefined) throw new ConfigError('Invalid configuration: DATABASE_URL sslmode=verify-ca needs DATABASE_CA_PATH (or sslrootcert)')
    ssl.checkServerIdentity = skipHostName
  }
  return { connectionString, ssl }
}

function readPem (path: string, setting: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (err) {
    throw new ConfigError(`Invalid configuration: ${setting}=${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
}

/** Connects to DATABASE_URL, or starts the embedded server under DATA_DIR; then migrates. */
export async function openDatabase ({ databaseUrl, caPath, dataDir, embeddedPort, poolSize, timeoutMs, log }: DatabaseOptions): Promise<Database> {
  // Before the embedded server starts: a TLS setting that cannot work stops start-up at once.
  const connection = databaseUrl === undefined ? undefined : poolConnection(databaseUrl, caPath)
  const embedded = databaseUrl === undefined
    ? await startEmbeddedPostgres({ dataDir, port: embeddedPort, log })
    : undefined
  const pool = new pg.Pool({
    ...(connection ?? { connectionString: embedded!.url }),
    max: poolSize,
    // Bounded waits: a database that does not answer turns into 503s and retries, not a growing pile of requests.
    connectionTimeoutMillis: timeoutMs,
    statement_timeout: STATEMENT_TIMEOUT_MS,
    idle_in_transaction_session_timeout: TRANSACTION_IDLE_LIMIT_MS
  })
  // An idle client losing its server must not crash the process; the next query reports it.
  // The error carries its pg client, connection settings included: log only what went wrong.
  pool.on('error', (err: Error & { code?: string }) => log.warn({ error: err.message, code: err.code }, 'idle database connection lost'))
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
    dataDir: embedded?.dataDir,
    async close () {
      await pool.end()
      await embedded?.stop()
    }
  }
}
