import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { pino } from 'pino'
import { startEmbeddedPostgres } from '../../src/store/embedded-postgres.js'
import { startFakeRhsm, type FakeRhsm } from './fake-rhsm.js'
import { startFakeSources, type FakeSources } from './fake-sources.js'
import { startFakeSts, type FakeSts } from './fake-sts.js'
import { ready, startServer, upstreamEnv, type ServerProcess } from './process.js'
import { freePort, PSK } from './stack.js'

export interface Replica { url: string, server: ServerProcess }

export interface ReplicaSet {
  sources: FakeSources
  sts: FakeSts
  rhsm: FakeRhsm
  /** A client of the PostgreSQL server every replica uses. */
  db: pg.Client
  replicas: Replica[]
}

interface Teardown { teardown: (fn: () => unknown) => void }

/** `count` server processes sharing one real PostgreSQL server, with fakes of every upstream; statuses are PATCHed to sources-api. */
export async function startReplicas (t: Teardown, count: number, env: Record<string, string> = {}, entry?: string[]): Promise<ReplicaSet> {
  const [sources, sts, rhsm] = await Promise.all([startFakeSources({ psk: PSK }), startFakeSts(), startFakeRhsm()])
  const dataDir = mkdtempSync(join(tmpdir(), 'cloudoreg-replicas-'))
  const postgres = await startEmbeddedPostgres({ dataDir, port: await freePort(), log: pino({ level: 'silent' }) })
  const db = new pg.Client({ connectionString: postgres.url })
  await db.connect()
  const replicas: Replica[] = []
  t.teardown(async () => {
    for (const r of replicas) r.server.child.kill('SIGKILL')
    await Promise.all(replicas.map(r => r.server.exited))
    await db.end()
    await postgres.stop()
    await Promise.all([sources.close(), sts.close(), rhsm.close()])
    rmSync(dataDir, { recursive: true, force: true })
  })
  for (let r = 0; r < count; r++) {
    const port = await freePort()
    const server = startServer({
      DATABASE_URL: postgres.url,
      PORT: String(port),
      HOST: '127.0.0.1',
      ...upstreamEnv({ sources, sts, rhsm }),
      STATUS_SINK: 'http',
      LOG_LEVEL: 'warn',
      ...env
    }, entry)
    replicas.push({ url: `http://127.0.0.1:${port}`, server })
  }
  // One at a time: the first migrates, the others find the schema ready.
  for (const r of replicas) await ready(r.url)
  return { sources, sts, rhsm, db, replicas }
}

/** Leases held by the server process with this pid (owners are host/pid/random). */
export async function leasesOf (db: pg.Client, pid: number): Promise<number> {
  const { rows } = await db.query<{ n: number }>('select count(*)::int as n from source_leases where owner like \'%/\' || $1 || \'/%\'', [String(pid)])
  return rows[0].n
}

/** Resolves once no event is pending and no status unsent. */
export async function pendingWork (db: pg.Client): Promise<{ pending: number, unsent: number }> {
  const { rows } = await db.query(`select (select count(*)::int from inbox where state = 'pending') as pending,
    (select count(*)::int from status_outbox where sent_at is null and not superseded) as unsent`)
  return rows[0]
}
