import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import t from 'tap'
import { startFakeRhsm } from './helpers/fake-rhsm.js'
import { startFakeSources } from './helpers/fake-sources.js'
import { startFakeSts } from './helpers/fake-sts.js'
import { collectTopic, startMockKafka } from './helpers/kafka.js'
import { alive, pushUntilAcknowledged, ready, startServer, upstreamEnv, type ServerProcess } from './helpers/process.js'
import { eventually, freePort, ORG, PSK, STATUS_TOPIC } from './helpers/stack.js'

// Crash safety through the real server process, embedded PostgreSQL and the mock Kafka cluster:
// pushes keep coming while the server is SIGKILLed three times (once with its PostgreSQL).
// CRASH_SOURCES and CRASH_EVENTS_PER_SOURCE scale it (defaults: 200 × 10 = 2,000 events).
const SOURCES = Number(process.env.CRASH_SOURCES ?? 200)
const PER_SOURCE = Number(process.env.CRASH_EVENTS_PER_SOURCE ?? 10)
const TOTAL = SOURCES * PER_SOURCE
const PUSHERS = 8

const app = (i: number): string => String(10_000 + i)
const auth = (i: number, k: number): string => String(100_000 + i * 100 + k)
const account = (i: number, k: number): string => String(300_000_000_000 + i * 100 + k)

t.test(`${TOTAL} events across ${SOURCES} sources survive three SIGKILLs: nothing lost, order kept, one mapping per source`, async t => {
  const [sources, sts, rhsm, kafka] = await Promise.all([startFakeSources({ psk: PSK }), startFakeSts(), startFakeRhsm(), startMockKafka()])
  const dataDir = mkdtempSync(join(tmpdir(), 'cloudoreg-crash-'))
  rhsm.jitterMs = 10
  sts.jitterMs = 5
  for (let i = 0; i < SOURCES; i++) {
    sources.addSource({ sourceId: String(i + 1), applicationId: app(i), authenticationId: auth(i, 0), arn: `arn:aws:iam::${account(i, 0)}:role/r` })
    for (let k = 1; k < PER_SOURCE; k++) sources.addRole(auth(i, 0), auth(i, k), `arn:aws:iam::${account(i, k)}:role/r`)
  }
  const [port, pgPort] = [await freePort(), await freePort()]
  const url = `http://127.0.0.1:${port}`
  const env = {
    DATA_DIR: dataDir,
    PORT: String(port),
    HOST: '127.0.0.1',
    EMBEDDED_PG_PORT: String(pgPort),
    ...upstreamEnv({ sources, sts, rhsm }),
    KAFKA_BROKERS: kafka.brokers.join(','),
    LOG_LEVEL: 'warn'
  }
  let server: ServerProcess = startServer(env)
  const status = await collectTopic(kafka.brokers, STATUS_TOPIC)
  t.teardown(async () => {
    server.child.kill('SIGKILL')
    await server.exited
    await status.stop()
    await kafka.stop()
    await Promise.all([sources.close(), sts.close(), rhsm.close()])
    const pid = readPid(dataDir)
    if (pid !== null && alive(pid)) process.kill(pid, 'SIGKILL')
    rmSync(dataDir, { recursive: true, force: true })
  })
  await ready(url)
  const started = Date.now()

  // Like a bridge: a push is retried until it is acknowledged; the delivery id makes retries duplicates.
  let acked = 0
  let retries = 0
  async function push (i: number, k: number): Promise<void> {
    const failed = await pushUntilAcknowledged(() => url, 'ApplicationAuthentication.create',
      { id: k, application_id: Number(app(i)), authentication_id: Number(auth(i, k)) }, `e-${i}-${k}`, 100)
    retries += failed
    acked++
  }

  const killAt = [0.2, 0.5, 0.8].map(f => Math.floor(TOTAL * (f + (Math.random() - 0.5) * 0.2)))
  const kills: string[] = []
  let clearedLeases = 0
  const killer = (async () => {
    for (const [n, at] of killAt.entries()) {
      await eventually(() => acked >= at ? true : undefined, 600_000, `${at} acknowledged pushes`)
      const withPostgres = n === 1
      const pgPid = readPid(dataDir)
      server.child.kill('SIGKILL')
      if (withPostgres && pgPid !== null) process.kill(pgPid, 'SIGKILL')
      await server.exited
      kills.push(`${withPostgres ? 'Node and PostgreSQL' : 'Node alone'} at ${acked} acknowledged pushes`)
      server = startServer(env)
      await ready(url)
      // Its sources need not wait for LEASE_MS: the embedded store is this process's alone.
      const restarted = server
      await eventually(() => /cleared the leases of a previous run/.test(restarted.output()) ? true : undefined, 10_000, 'the dead run\'s leases to be cleared')
      clearedLeases++
    }
  })()

  // Rounds keep each source's pushes in order (the bridge's ordered delivery); sources interleave.
  for (let k = 0; k < PER_SOURCE; k++) {
    let next = 0
    await Promise.all(Array.from({ length: PUSHERS }, async () => {
      while (next < SOURCES) await push(next++, k)
    }))
  }
  await killer
  const pushedIn = Date.now() - started

  const password = readFileSync(join(dataDir, 'pg-password'), 'utf8').trim()
  const db = new pg.Client({ connectionString: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${pgPort}/postgres` })
  await db.connect()
  t.teardown(() => db.end())
  await eventually(async () => {
    const { rows } = await db.query(`select (select count(*)::int from inbox where state = 'pending') as pending,
      (select count(*)::int from status_outbox where sent_at is null and not superseded) as unsent`)
    return rows[0].pending === 0 && rows[0].unsent === 0 ? true : undefined
  }, 600_000, 'every event processed and every status sent')
  const doneIn = Date.now() - started

  const { rows: events } = await db.query('select state, count(*)::int as n from inbox group by state')
  t.same(events, [{ state: 'done', n: TOTAL }], 'every accepted event was stored once and processed')

  // Per-source order: RHSM was asked to map each source's accounts in push order. A call in flight at
  // a kill is repeated when its event runs again: that shows as the same account twice in a row.
  const posts = new Map<string, string[]>()
  for (const r of rhsm.requests) {
    if (r.method !== 'POST') continue
    const [item] = r.body as Array<{ id: string, sourceId: string }>
    posts.set(item.sourceId, [...(posts.get(item.sourceId) ?? []), item.id])
  }
  let violations = 0
  let repeated = 0
  for (let i = 0; i < SOURCES; i++) {
    const seen = posts.get(String(i + 1)) ?? []
    const collapsed = seen.filter((a, j) => j === 0 || a !== seen[j - 1])
    repeated += seen.length - collapsed.length
    if (JSON.stringify(collapsed) !== JSON.stringify(Array.from({ length: PER_SOURCE }, (_, k) => account(i, k)))) violations++
  }
  t.equal(violations, 0, 'per-source order held')
  t.ok(repeated <= 3 * 16, `${repeated} repeated RHSM creates, all for calls in flight at a kill (at most CONCURRENCY per kill)`)
  t.equal(rhsm.mappings.size, SOURCES, 'one mapping per source')
  let wrongMapping = 0
  for (let i = 0; i < SOURCES; i++) if (rhsm.mappings.get(String(i + 1))?.awsAccountId !== account(i, PER_SOURCE - 1)) wrongMapping++
  t.equal(wrongMapping, 0, 'each source mapped to its last account')

  const messages = await status.waitFor(m => new Set(m.map(x => JSON.parse(x.value).resource_id)).size >= SOURCES, 120_000)
  const last = new Map<string, string>()
  for (const m of messages) {
    const body = JSON.parse(m.value)
    last.set(body.resource_id, body.status)
  }
  t.equal([...last.values()].filter(s => s === 'available').length, SOURCES, 'every source\'s final availability message reached the topic')

  const { rows: regs } = await db.query('select count(*)::int as n from registrations where state = \'registered\' and mapped')
  t.equal(regs[0].n, SOURCES, 'the REST state matches: every source registered and mapped')
  const sample = await fetch(`${url}/api/cloudoreg/v1/sources/1`, { headers: { 'x-rh-identity': Buffer.from(JSON.stringify({ identity: { org_id: ORG, type: 'User' } })).toString('base64') } })
  t.match(await sample.json(), { state: 'registered', aws_account_id: account(0, PER_SOURCE - 1) })

  t.equal(clearedLeases, 3, 'each restart cleared the leases its dead predecessor held')
  t.comment(`kills: ${kills.join('; ')}`)
  t.comment(`${TOTAL} events, ${SOURCES} sources: pushed in ${(pushedIn / 1000).toFixed(1)} s with ${retries} push retries; all processed and reported after ${(doneIn / 1000).toFixed(1)} s`)
  t.comment(`RHSM: ${rhsm.requests.filter(r => r.method === 'POST').length} creates for ${TOTAL} events (${repeated} repeated); ${messages.length} status messages on the topic`)
})

function readPid (dataDir: string): number | null {
  try {
    return Number(readFileSync(join(dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0])
  } catch {
    return null
  }
}
