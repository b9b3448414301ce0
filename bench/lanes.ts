import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import pg from 'pg'
import { startFakeRhsm } from '../test/helpers/fake-rhsm.js'
import { startFakeSources } from '../test/helpers/fake-sources.js'
import { startFakeSts } from '../test/helpers/fake-sts.js'
import { collectTopic, startMockKafka } from '../test/helpers/kafka.js'
import { eventually } from '../test/helpers/stack.js'

// Lanes and turns between orgs under a wave of sources-api re-checks (issue 12): the wave is queued
// through the availability route as sources-api sends it, the biggest org's checks first (the worst
// case for arrival order), before processing starts; while it drains, a new org links an account every `createEveryMs` and the
// time until its `available` PATCH reaches sources-api is measured.

interface Server { child: ChildProcess, url: string, dataDir: string, pgPort: number }

export interface LanesDeps {
  cloudoreg: (env: Record<string, string>) => Promise<Server>
  stop: (child: ChildProcess) => Promise<void>
  report: (what: string, figure: string, how: string) => void
  expectNone: (what: string, count: number) => void
}

export interface LanesSize {
  /** Re-checks of each org, the first the big one. */
  orgs: number[]
  latencyMs: number
  createEveryMs: number
  /** STS_MAX_RPS for the run: unset, the budgets do not bind (the bench's default). */
  stsMaxRps?: number
  /** The figures' number in the report. */
  id?: string
}

const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]
}
const median = (xs: number[]): number => quantile(xs, 0.5)

export async function lanesBench (deps: LanesDeps, size: LanesSize): Promise<void> {
  const [api, sts, rhsm, kafka] = await Promise.all([startFakeSources({ psk: 'bench-psk-123' }), startFakeSts(), startFakeRhsm(), startMockKafka()])
  // When each application's `available` arrived on the status topic (the platform's sink).
  const status = await collectTopic(kafka.brokers, 'platform.sources.status')
  const availableOnTopic = new Map<string, number>()
  let read = 0
  let collecting = true
  const collected = status.waitFor(m => {
    for (; read < m.length; read++) {
      const v = JSON.parse(m[read].value) as { resource_id: string, status: string }
      if (v.status === 'available' && !availableOnTopic.has(v.resource_id)) availableOnTopic.set(v.resource_id, Date.now())
    }
    return !collecting
  }, 60 * 60_000).catch(() => {})
  for (const fake of [api, sts, rhsm]) fake.delayMs = size.latencyMs
  const total = size.orgs.reduce((a, b) => a + b, 0)
  // Source n of org k: not registered yet, so each check looks it up in sources-api, verifies and maps it.
  const checks: Array<{ org: string, source: string }> = []
  size.orgs.forEach((count, k) => {
    for (let i = 0; i < count; i++) {
      const n = checks.length + 1
      api.addSource({ sourceId: String(n), applicationId: String(100_000 + n), authenticationId: String(200_000 + n), arn: `arn:aws:iam::${500_000_000_000 + n}:role/r` })
      checks.push({ org: String(1_000_001 + k), source: String(n) })
    }
  })
  // The wave is queued first, by a replica whose upstreams are not configured yet (it stores and waits),
  // then the same data is served by one that processes it: every check waits from the start.
  const limits = { CHECK_ORG_PER_MINUTE: '1000000', CHECK_TOTAL_PER_MINUTE: '1000000' }
  const queuing = await deps.cloudoreg(limits)
  const queueStarted = Date.now()
  let next = 0
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (next < checks.length) {
      const c = checks[next++]
      for (;;) {
        const res = await fetch(`${queuing.url}/internal/api/cloudoreg/v1/availability_status`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-rh-sources-org-id': c.org, 'x-rh-sources-account-number': '' },
          body: JSON.stringify({ source_id: c.source })
        })
        await res.arrayBuffer()
        if (res.status === 204) break
        await new Promise(resolve => setTimeout(resolve, 200))
      }
    }
  }))
  const queuedIn = (Date.now() - queueStarted) / 1000
  await deps.stop(queuing.child)
  const server = await deps.cloudoreg({
    ...limits,
    DATA_DIR: queuing.dataDir,
    EMBEDDED_PG_PORT: String(queuing.pgPort),
    SOURCES_API_URL: api.url,
    SOURCES_PSK: 'bench-psk-123',
    RHSM_API_URL: rhsm.url,
    AWS_STS_ENDPOINT: sts.url,
    KAFKA_BROKERS: kafka.brokers.join(','),
    CONCURRENCY: '64',
    ...(size.stsMaxRps === undefined ? {} : { STS_MAX_RPS: String(size.stsMaxRps) }),
    AWS_ACCESS_KEY_ID: 'AKIDBENCH',
    AWS_SECRET_ACCESS_KEY: 'bench-secret'
  })
  const started = Date.now()

  // The customers: a new org's create every createEveryMs while the wave drains.
  const firstCall = (): Map<string, number> => {
    const m = new Map<string, number>()
    for (const r of api.requests) {
      const s = /^\/api\/sources\/v3\.1\/sources\/(\d+)\/applications$/.exec(r.path)?.[1]
      if (s !== undefined && Number(s) <= total && !m.has(s)) m.set(s, r.at)
    }
    return m
  }
  const creates: Array<{ app: string, sent: number }> = []
  const availableAt = (app: string): number | undefined => availableOnTopic.get(app)
  let c = 0
  let shed = 0
  for (;;) {
    if (firstCall().size >= total) break
    c++
    const n = 900_000 + c
    api.addSource({ sourceId: String(n), applicationId: String(n + 10_000), authenticationId: String(n + 20_000), arn: `arn:aws:iam::${600_000_000_000 + c}:role/r` })
    const sent = Date.now()
    // Like a bridge, a push shed with 503 (a loaded machine) is sent again; the time counts from the first send.
    for (;;) {
      const res = await fetch(`${server.url}/internal/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', event_type: 'ApplicationAuthentication.create', 'x-rh-sources-org-id': String(3_000_000 + c) },
        body: JSON.stringify({ application_id: n + 10_000, authentication_id: n + 20_000 })
      })
      await res.arrayBuffer()
      if (res.status !== 503) break
      shed++
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    creates.push({ app: String(n + 10_000), sent })
    await new Promise(resolve => setTimeout(resolve, size.createEveryMs))
  }
  const latencies = await eventually(() => {
    const l = creates.map(k => { const at = availableAt(k.app); return at === undefined ? undefined : at - k.sent })
    return l.every(x => x !== undefined) ? l as number[] : undefined
  }, 120_000, 'every create\'s available status')
  await eventually(async () => {
    const m = /cloudoreg_inbox_pending (\d+)/.exec(await (await fetch(`${server.url}/metrics`)).text())
    return m && Number(m[1]) === 0 ? true : undefined
  }, 30 * 60_000, 'the wave to drain')
  const drained = (Date.now() - started) / 1000

  // Waits in the re-check lane: from the check's 204 to its first call to sources-api.
  const starts = firstCall()
  const byOrg = new Map<string, Array<{ wait: number, start: number }>>()
  for (const k of checks) {
    const start = starts.get(k.source)!
    const list = byOrg.get(k.org) ?? []
    list.push({ wait: start - started, start })
    byOrg.set(k.org, list)
  }
  // While every org still had re-checks waiting: until the first org's last check started.
  const contentionEnds = Math.min(...[...byOrg.values()].map(l => Math.max(...l.map(x => x.start))))
  const allWaits = [...byOrg.entries()].map(([org, l]) => ({ org, n: l.length, all: median(l.map(x => x.wait)), contended: median(l.filter(x => x.start <= contentionEnds).map(x => x.wait)) }))
  const spread = (key: 'all' | 'contended'): number => Math.max(...allWaits.map(w => w[key])) / Math.max(1, Math.min(...allWaits.map(w => w[key])))

  // Order: on every queue key, events ended in the order they were stored.
  const password = readFileSync(join(queuing.dataDir, 'pg-password'), 'utf8').trim()
  const db = new pg.Client({ host: '127.0.0.1', port: queuing.pgPort, user: 'postgres', password, database: 'postgres' })
  await db.connect()
  const { rows: [order] } = await db.query(`select count(*)::int as violations from (
      select finished_at < lag(finished_at) over (partition by queue_key order by id) as early from inbox where queue_key is not null) x where early`)
  const { rows: [ends] } = await db.query("select count(*) filter (where state <> 'done')::int as not_done, count(*)::int as events from inbox")
  // The creates' own part: stored to ended (the rest is the status relay and the broker).
  const { rows: createRuns } = await db.query<{ ms: number }>(
    "select (extract(epoch from finished_at - received_at) * 1000)::int as ms from inbox where event_type = 'ApplicationAuthentication.create'")
  const runs = createRuns.map(r => r.ms)
  await db.end()
  await deps.stop(server.child)
  collecting = false
  await status.stop()
  await collected
  await kafka.stop()
  await Promise.all([api.close(), sts.close(), rhsm.close()])
  rmSync(queuing.dataDir, { recursive: true, force: true })
  rmSync(server.dataDir, { recursive: true, force: true })

  const id = size.id ?? '5'
  const budget = size.stsMaxRps === undefined ? '' : `, STS_MAX_RPS=${size.stsMaxRps}`
  deps.expectNone(`${id}. order violations`, order.violations)
  deps.expectNone(`${id}. events not done`, ends.not_done)
  const big = allWaits[0]
  const small = allWaits.slice(1)
  deps.report(`${id}. a create during a wave of ${total.toLocaleString('en')} re-checks (${size.orgs.length} orgs, one with ${size.orgs[0].toLocaleString('en')}), ${size.latencyMs} ms per call, CONCURRENCY=64${budget}`,
    `${creates.length} creates of new orgs: available after p50 ${median(latencies)} ms, p99 ${quantile(latencies, 0.99)} ms, max ${Math.max(...latencies)} ms (bound 2,000 ms; ${shed} pushes shed with 503 and sent again), of which stored to ended p50 ${median(runs)} ms, p99 ${quantile(runs, 0.99)} ms; ` +
    `the wave drained in ${drained.toFixed(0)} s (queued beforehand in ${queuedIn.toFixed(0)} s)`,
    `push of the create to its available message on platform.sources.status, one create every ${size.createEveryMs} ms until the last re-check started`)
  deps.report(`${id}b. re-check lane, median wait per org while every org had re-checks waiting`,
    `big org ${big.contended} ms, others ${Math.min(...small.map(w => w.contended))}–${Math.max(...small.map(w => w.contended))} ms: max/min ${spread('contended').toFixed(2)} (bound 2)`,
    `wait = the start of the replica that processes the queued wave to the check's first sources-api call; only checks started before the first org ran out (${((contentionEnds - started) / 1000).toFixed(0)} s into the run)`)
  deps.report(`${id}c. re-check lane, median wait per org over the whole wave`,
    `big org ${big.all} ms, others ${Math.min(...small.map(w => w.all))}–${Math.max(...small.map(w => w.all))} ms: max/min ${spread('all').toFixed(1)}`,
    'turns between orgs drain the small orgs first, so over the whole wave the big org waits longest (see BENCHMARKS.md)')
  deps.report(`${id}d. order`, `${order.violations} order violations in ${ends.events.toLocaleString('en')} events; ${ends.not_done} not done`, 'per queue key, events ended in id order')
}
