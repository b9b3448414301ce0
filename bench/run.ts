import { spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { closeSync, fdatasyncSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs'
import { createServer } from 'node:http'
import { cpus, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import pg from 'pg'
import { startFakeRhsm } from '../test/helpers/fake-rhsm.js'
import { startFakeSources } from '../test/helpers/fake-sources.js'
import { startFakeSts } from '../test/helpers/fake-sts.js'
import { collectTopic, startMockKafka } from '../test/helpers/kafka.js'
import { createRecord, eventually, freePort } from '../test/helpers/stack.js'
import { lanesBench } from './lanes.js'
import { reconcileBench } from './reconcile.js'

// npm run bench: each figure against a ceiling measured in the same run on the same machine.
// cloudoreg runs as its own process (compiled, `node dist/src/server.js`); load comes from this one.
// `npm run bench -- --smoke` runs every part for a second or so with small sizes: a check that the
// bench still works (CI runs it), not a measurement.
const args = process.argv.slice(2)
const SMOKE = args.includes('--smoke')
const only = args.find(a => !a.startsWith('--'))
/** Seconds of each load run. */
const SECONDS = SMOKE ? 1 : 10
const ORG = '7654321'
const rows: Array<[string, string, string]> = []
const report = (what: string, figure: string, how: string): void => { rows.push([what, figure, how]); console.log(`${what}: ${figure}   (${how})`) }
/** What went wrong rather than slow (errors, order violations): the run exits non-zero, so the smoke run in CI fails. */
const faults: string[] = []
const expectNone = (what: string, count: number): void => { if (count > 0) faults.push(`${what}: ${count}`) }
/** Connection errors, timeouts and answers other than 2xx or a load-shedding 503 (which a loaded machine may rightly give). */
const failures = (r: autocannon.Result): number => r.errors +
  Object.entries(r.statusCodeStats ?? {}).reduce((a, [code, s]) => a + (/^2\d\d$|^503$/.test(code) ? 0 : (s as { count: number }).count), 0)

function start (args: string[], env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit'] })
  process.on('exit', () => child.kill('SIGKILL'))
  return child
}

async function stop (child: ChildProcess): Promise<void> {
  const exited = new Promise(resolve => child.on('exit', resolve))
  child.kill('SIGTERM')
  await exited
}

async function up (url: string): Promise<void> {
  await eventually(async () => {
    try {
      const res = await fetch(url)
      return res.status < 500 ? true : undefined
    } catch {
      return undefined
    }
  }, 60_000, url)
}

function peakRss (pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) / 1024 : NaN
}

const TICK = 100 // USER_HZ: /proc times are in 1/100 s on Linux

/** CPU seconds of a process: its own plus its reaped children's. */
function cpuOf (stat: string): { ppid: number, seconds: number } {
  // Fields after the command name, which is in parentheses and may hold spaces.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return { ppid: Number(f[1]), seconds: (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / TICK }
}

/**
 * CPU seconds used so far by `pid` and by the PostgreSQL whose postmaster's command line names
 * `dataDir` (pg_ctl starts it as a daemon, so it is no descendant of `pid`), backends included.
 */
function treeCpu (pid: number, dataDir?: string): { self: number, postgres: number } {
  const procs = new Map<number, { ppid: number, seconds: number }>()
  let postmaster: number | undefined
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      procs.set(Number(name), cpuOf(readFileSync(`/proc/${name}/stat`, 'utf8')))
      if (dataDir !== undefined && postmaster === undefined && readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(dataDir) &&
        readFileSync(`/proc/${name}/comm`, 'utf8').trim() === 'postgres') postmaster = Number(name)
    } catch {}
  }
  let postgres = 0
  if (postmaster !== undefined) {
    for (const [p, c] of procs) {
      if (p === postmaster || c.ppid === postmaster) postgres += c.seconds
    }
  }
  return { self: procs.get(pid)?.seconds ?? NaN, postgres }
}

/** Busy and total CPU seconds of the whole machine, from /proc/stat. */
function machineCpu (): { busy: number, total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  const total = f.reduce((a, b) => a + b, 0)
  return { busy: (total - f[3] - f[4]) / TICK, total: total / TICK }
}

const event = (i: number): string => JSON.stringify({ id: i, application_id: i, authentication_id: i, tenant: '1234567' })
const headers = { 'content-type': 'application/json', event_type: 'ApplicationAuthentication.create', 'x-rh-sources-org-id': ORG }

async function cannon (opts: autocannon.Options): Promise<autocannon.Result> {
  return autocannon({ connections: 64, duration: SECONDS, ...opts })
}

function shippedNodeArgs (): string {
  const { scripts } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: { start: string } }
  return /^node((?: --\S+)*) \S+$/.exec(scripts.start)?.[1] ?? ''
}

interface Server { child: ChildProcess, url: string, dataDir: string, pgPort: number }

/** Budgets that never bind: these figures measure cloudoreg, not its politeness to upstreams. */
const UNBOUND_RATES = { STS_MAX_RPS: '100000', RHSM_MAX_RPS: '100000', SOURCES_MAX_RPS: '100000' }

async function cloudoreg (env: Record<string, string>): Promise<Server> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cloudoreg-bench-'))
  const port = await freePort()
  const pgPort = await freePort()
  // As shipped: the node flags of `npm start` (the image's CMD has the same); SERVER_NODE_ARGS, e.g.
  // --max-old-space-size=128, replaces them to measure other V8 settings.
  const child = start([...(process.env.SERVER_NODE_ARGS ?? shippedNodeArgs()).split(' ').filter(Boolean), 'dist/src/server.js'], {
    DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1', EMBEDDED_PG_PORT: String(pgPort), LOG_LEVEL: 'warn', PUSH_AUTH: 'none', ...UNBOUND_RATES, ...env
  })
  const url = `http://127.0.0.1:${port}`
  await up(`${url}/readyz`)
  return { child, url, dataDir, pgPort }
}

/** The machine's raw durable-write bound: 8 KB written and `fdatasync`ed in place, over and over, in a preallocated file (as WAL segments are) on the disk of `dir`. */
function fdatasyncLoop (dir: string): { perSecond: number, p50: number } {
  const file = join(dir, 'fdatasync-bench')
  const fd = openSync(file, 'w')
  const block = Buffer.alloc(8192, 7)
  const blocks = 2048
  try {
    for (let i = 0; i < blocks; i++) writeSync(fd, block, 0, block.length, i * block.length)
    fdatasyncSync(fd)
    const times: number[] = []
    const until = performance.now() + SECONDS * 1000
    for (let i = 0; performance.now() < until; i++) {
      const t0 = performance.now()
      writeSync(fd, block, 0, block.length, (i % blocks) * block.length)
      fdatasyncSync(fd)
      times.push(performance.now() - t0)
    }
    return rateOf(times)
  } finally {
    closeSync(fd)
    rmSync(file, { force: true })
  }
}

function rateOf (times: number[]): { perSecond: number, p50: number } {
  const sorted = [...times].sort((a, b) => a - b)
  return { perSecond: 1000 * times.length / times.reduce((a, b) => a + b, 0), p50: sorted[Math.floor(sorted.length / 2)] }
}

/** The database's durable-commit bound: one connection committing one-row inserts, one after the other, on cloudoreg's own PostgreSQL. */
async function commitLoop (server: Server): Promise<{ run: (seconds: number) => Promise<number[]>, close: () => Promise<void> }> {
  const password = readFileSync(join(server.dataDir, 'pg-password'), 'utf8').trim()
  const client = new pg.Client({ host: '127.0.0.1', port: server.pgPort, user: 'postgres', password, database: 'postgres' })
  await client.connect()
  const { rows: [sync] } = await client.query<{ synchronous_commit: string }>('show synchronous_commit')
  if (sync.synchronous_commit !== 'on') throw new Error(`synchronous_commit is ${sync.synchronous_commit}: the bound would not be durable`)
  await client.query('create table if not exists bench_commit (id bigserial primary key, body text not null)')
  const insert = { name: 'bench-commit', text: 'insert into bench_commit (body) values ($1)', values: ['{"id":1}'] }
  return {
    async run (seconds) {
      const times: number[] = []
      const until = performance.now() + seconds * 1000
      while (performance.now() < until) {
        const t0 = performance.now()
        await client.query(insert)
        times.push(performance.now() - t0)
      }
      return times
    },
    async close () {
      await client.query('drop table bench_commit')
      await client.end()
    }
  }
}

/** HTTP and the commit, nothing else: bench/bare-server.mjs committing each request's body as one row on one connection, on cloudoreg's own PostgreSQL. */
async function bareCommitServer (server: Server): Promise<{ url: string, close: () => Promise<void> }> {
  const password = readFileSync(join(server.dataDir, 'pg-password'), 'utf8').trim()
  const port = await freePort()
  const bare = start(['bench/bare-server.mjs'], { PORT: String(port), DATABASE_URL: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${server.pgPort}/postgres` })
  await up(`http://127.0.0.1:${port}/`)
  return { url: `http://127.0.0.1:${port}/internal/v1/events`, close: async () => { await stop(bare) } }
}

interface CpuSnapshot { tree: { self: number, postgres: number }, own: NodeJS.CpuUsage, machine: { busy: number, total: number } }
/** CPU seconds spent between two snapshots: cloudoreg, its PostgreSQL, this process (the load generator), the machine. */
interface CpuSpent { node: number, postgres: number, load: number, busy: number, total: number }

function cpuSnapshot (server: Server): CpuSnapshot {
  return { tree: treeCpu(server.child.pid!, server.dataDir), own: process.cpuUsage(), machine: machineCpu() }
}

function cpuSince (server: Server, before: CpuSnapshot, spent?: CpuSpent): CpuSpent {
  const tree = treeCpu(server.child.pid!, server.dataDir)
  const own = process.cpuUsage(before.own)
  const machine = machineCpu()
  return {
    node: (spent?.node ?? 0) + tree.self - before.tree.self,
    postgres: (spent?.postgres ?? 0) + tree.postgres - before.tree.postgres,
    load: (spent?.load ?? 0) + (own.user + own.system) / 1e6,
    busy: (spent?.busy ?? 0) + machine.busy - before.machine.busy,
    total: (spent?.total ?? 0) + machine.total - before.machine.total
  }
}

function requestCpuText (spent: CpuSpent, requests: number): string {
  const us = (s: number): number => 1e6 * s / Math.max(1, requests)
  const other = Math.max(0, us(spent.busy) - us(spent.node) - us(spent.postgres) - us(spent.load))
  return `CPU per request: cloudoreg ${us(spent.node).toFixed(0)} µs, PostgreSQL ${us(spent.postgres).toFixed(0)} µs, load generator ${us(spent.load).toFixed(0)} µs; ` +
    `other work on the machine ${other.toFixed(0)} µs; machine ${(100 * spent.busy / spent.total).toFixed(0)}% busy`
}

/** CPU used while `work` ran, per request, by cloudoreg and its PostgreSQL, and what the rest of the machine did meanwhile. */
async function withCpu<T extends autocannon.Result> (server: Server, work: () => Promise<T>): Promise<{ result: T, text: string }> {
  const before = cpuSnapshot(server)
  const result = await work()
  return { result, text: requestCpuText(cpuSince(server, before), result.requests.total) }
}

/** Requests per second and the median of the runs' p50 latencies, over several autocannon runs. */
function combined (runs: autocannon.Result[]): { perSecond: number, p50: number, p99: number, non2xx: number } {
  const total = runs.reduce((a, r) => a + r.requests.total, 0)
  const seconds = runs.reduce((a, r) => a + r.duration, 0)
  const p50s = runs.map(r => r.latency.p50).sort((a, b) => a - b)
  return { perSecond: total / seconds, p50: p50s[Math.floor(p50s.length / 2)], p99: Math.max(...runs.map(r => r.latency.p99)), non2xx: runs.reduce((a, r) => a + r.non2xx, 0) }
}

const pushOne = (n: { next: number }): autocannon.Request => ({
  setupRequest: req => ({ ...req, headers: { ...req.headers, 'webhook-id': randomUUID() }, body: event(n.next++) })
})

async function ingest (): Promise<void> {
  const port = await freePort()
  const bare = start(['bench/bare-server.mjs'], { PORT: String(port) })
  const bareUrl = `http://127.0.0.1:${port}/internal/v1/events`
  await up(`http://127.0.0.1:${port}/`)
  const ceiling = await cannon({ url: bareUrl, method: 'POST', headers, body: event(1) })
  report('1. ingest ceiling (bare Fastify, 202)', `${Math.round(ceiling.requests.average)} req/s, p50 ${ceiling.latency.p50} ms, p99 ${ceiling.latency.p99} ms`, `autocannon, 64 connections, ${SECONDS} s, same body`)
  const bareOne = await cannon({ url: bareUrl, method: 'POST', headers, body: event(1), connections: 1 })
  report('1b. one-connection ceiling (bare Fastify, 202)', `${Math.round(bareOne.requests.average)} req/s, p50 ${bareOne.latency.p50} ms`, `autocannon, 1 connection, ${SECONDS} s`)
  await stop(bare)

  const server = await cloudoreg({})
  const n = { next: 0 }
  const url = `${server.url}/internal/v1/events`
  // A process that has run for a while, as in production: until V8 has optimised the push path, the
  // first thousands of pushes cost cloudoreg twice the CPU (measured: 859 µs per push in the first 5 s
  // on one connection, 340 µs after 5 s on 64).
  const WARM = SMOKE ? 1 : 5
  await cannon({ url, method: 'POST', headers, requests: [pushOne(n)], duration: WARM })
  await cannon({ url, method: 'POST', headers, requests: [pushOne(n)], duration: WARM, connections: 1 })

  // The ordered single stream (a KafkaSource with `ordering: ordered`: one push in flight), between its
  // bounds. The disk's fsync time drifts by half within minutes here, so the commit loop (0b), the bare
  // server committing (0c) and cloudoreg (5) take turns in slices, each getting the same disk.
  const disk = fdatasyncLoop(server.dataDir)
  const commits = await commitLoop(server)
  const bareCommit = await bareCommitServer(server)
  const bareN = { next: 0 }
  await cannon({ url: bareCommit.url, method: 'POST', headers, connections: 1, requests: [pushOne(bareN)], duration: WARM })
  const SLICES = SMOKE ? 1 : 5
  const slice = SECONDS / SLICES
  const commitTimes: number[] = []
  const bareRuns: autocannon.Result[] = []
  const streamRuns: autocannon.Result[] = []
  let bareCpu: CpuSpent | undefined
  let streamCpu: CpuSpent | undefined
  for (let i = 0; i < SLICES; i++) {
    commitTimes.push(...await commits.run(slice))
    let before = cpuSnapshot(server)
    bareRuns.push(await cannon({ url: bareCommit.url, method: 'POST', headers, connections: 1, requests: [pushOne(bareN)], duration: slice }))
    bareCpu = cpuSince(server, before, bareCpu)
    before = cpuSnapshot(server)
    streamRuns.push(await cannon({ url, method: 'POST', headers, connections: 1, requests: [pushOne(n)], duration: slice }))
    streamCpu = cpuSince(server, before, streamCpu)
  }
  await commits.close()
  await bareCommit.close()
  const commit = rateOf(commitTimes)
  const bareRate = combined(bareRuns)
  const stream = combined(streamRuns)
  for (const r of bareRuns) expectNone('0c. failed requests', failures(r))
  for (const r of streamRuns) expectNone('5. failed pushes', failures(r))
  const streamRate = stream.perSecond
  const bareCpuText = requestCpuText(bareCpu!, bareRuns.reduce((a, r) => a + r.requests.total, 0))
  report('0a. raw fdatasync of 8 KB in place', `${disk.perSecond.toFixed(0)}/s, p50 ${disk.p50.toFixed(2)} ms`, `${SECONDS} s loop on the data directory's disk`)
  report('0b. single-row durable commit on the same PostgreSQL', `${commit.perSecond.toFixed(0)}/s (${(100 * commit.perSecond / disk.perSecond).toFixed(0)}% of 0a), p50 ${commit.p50.toFixed(2)} ms`,
    `one connection, ${SLICES} slices of ${slice} s of one-row inserts taking turns with 0c and 5, synchronous_commit on`)
  report('0c. bare Fastify committing each request as one row, one connection', `${Math.round(bareRate.perSecond)} req/s (${(100 * bareRate.perSecond / commit.perSecond).toFixed(0)}% of 0b), p50 ${bareRate.p50} ms; ${bareCpuText.replace('cloudoreg', 'idle cloudoreg').replace('other work', 'the bare server and other work')}`,
    `autocannon, 1 connection, ${SLICES} slices of ${slice} s after ${WARM} s of warm-up, distinct bodies; bench/bare-server.mjs with one pg connection to the same PostgreSQL: HTTP plus 0b, nothing else`)
  report('5. ordered single stream: durable ingest, one connection', `${Math.round(streamRate)} req/s (**${(100 * streamRate / commit.perSecond).toFixed(0)}% of 0b**, ${(100 * streamRate / bareRate.perSecond).toFixed(0)}% of 0c, ${(100 * streamRate / disk.perSecond).toFixed(0)}% of 0a), p50 ${stream.p50} ms, p99 ${stream.p99} ms; non-2xx ${stream.non2xx}; ${requestCpuText(streamCpu!, streamRuns.reduce((a, r) => a + r.requests.total, 0))}`,
    `autocannon, 1 connection, ${SLICES} slices of ${slice} s, distinct sources-native events, after ${WARM} s on 64 connections and ${WARM} s on one; every 202 after its commit`)

  const single = await withCpu(server, async () => await cannon({ url, method: 'POST', headers, requests: [pushOne(n)] }))
  const rate = single.result.requests.average
  expectNone('2. failed pushes', failures(single.result))
  report('2. durable ingest, one event per request', `${Math.round(rate)} req/s (**${(100 * rate / ceiling.requests.average).toFixed(0)}% of 1**), p50 ${single.result.latency.p50} ms, p99 ${single.result.latency.p99} ms; non-2xx ${single.result.non2xx}; ${single.text}`,
    `autocannon, 64 connections, ${SECONDS} s, distinct sources-native events; every 202 after its commit (group commit)`)

  const half = await cannon({ url, method: 'POST', headers, overallRate: Math.max(1, Math.round(rate / 2)), requests: [pushOne(n)] })
  report('2b. durable ingest at half the measured maximum rate', `p99 ${half.latency.p99} ms at ${Math.round(half.requests.average)} req/s`, 'autocannon, overallRate = half of 2')

  let offset = 0
  const batch = (): string => JSON.stringify({
    records: Array.from({ length: 100 }, () => createRecord(offset, offset, offset++))
  })
  const batched = await cannon({
    url,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    requests: [{ setupRequest: req => ({ ...req, body: batch() }) }]
  })
  expectNone('2c. failed pushes', failures(batched))
  report('2c. durable ingest, batches of 100 events', `${Math.round(batched.requests.average * 100)} events/s, p99 ${batched.latency.p99} ms per batch; non-2xx ${batched.non2xx}`, `autocannon, 64 connections, ${SECONDS} s, record batches of 100 distinct events`)
  await stop(server.child)
  rmSync(server.dataDir, { recursive: true, force: true })
}

interface CpuShare {
  /** CPU milliseconds per source, by process. */
  cloudoreg: number
  postgres: number
  /** This process: the fakes of sources-api, STS and RHSM and the topic collector. */
  fakes: number
  broker: number
  /** Whatever else ran on the machine meanwhile (other users' work included). */
  other: number
  /** Share of the machine's CPU time that was busy. */
  busy: number
}

/** Sum and count of a Prometheus histogram's series whose labels include `labels`. */
function histogram (text: string, name: string, labels: string): { sum: number, count: number } {
  const total = (suffix: string): number => text.split('\n')
    .filter(line => line.startsWith(`${name}_${suffix}{`) && line.includes(labels))
    .reduce((a, line) => a + Number(line.slice(line.lastIndexOf(' ') + 1)), 0)
  return { sum: total('sum'), count: total('count') }
}

interface SlotTime {
  /** Upstream calls per source and their mean duration as cloudoreg timed them, by target. */
  calls: Record<'sources' | 'sts' | 'rhsm', { perSource: number, meanMs: number }>
  /** Time a source held one of the CONCURRENCY slots, on average (slots × run time / sources). */
  slotMs: number
  /** Seconds from the first push to: the push of the last batch answered, the first call to sources-api, the first and the last RHSM mapping, the last status consumed. */
  pushed: number
  firstCall: number
  firstMap: number
  lastMap: number
  end: number
}

const slotText = (t: SlotTime, sources: number): string =>
  `all pushed at ${t.pushed.toFixed(2)} s, first call to sources-api at ${t.firstCall.toFixed(2)} s, RHSM mapped the first source at ${t.firstMap.toFixed(2)} s, the last at ${t.lastMap.toFixed(2)} s (${((sources - 1) / (t.lastMap - t.firstMap)).toFixed(1)}/s in between), the last status was consumed at ${t.end.toFixed(2)} s; ` +
  `each source held a slot ${t.slotMs.toFixed(0)} ms, of which upstream calls ${Object.values(t.calls).reduce((a, c) => a + c.perSource * c.meanMs, 0).toFixed(0)} ms (` +
  Object.entries(t.calls).map(([k, c]) => `${k} ${c.perSource.toFixed(1)} × ${c.meanMs.toFixed(0)} ms`).join(', ') + ')'

const cpuText = (c: CpuShare): string => {
  const stack = c.cloudoreg + c.postgres + c.fakes + c.broker
  return `CPU per source: cloudoreg ${c.cloudoreg.toFixed(2)} ms, PostgreSQL ${c.postgres.toFixed(2)} ms, fakes ${c.fakes.toFixed(2)} ms, broker ${c.broker.toFixed(2)} ms ` +
    `(${stack.toFixed(1)} ms: at most ${(1000 * cpus().length / stack).toFixed(0)}/s on ${cpus().length} cores with nothing else running); ` +
    `other work on the machine ${c.other.toFixed(2)} ms; machine ${(100 * c.busy).toFixed(0)}% busy`
}

/**
 * BENCH_TRACING=1: cloudoreg exports every span over OTLP/HTTP to a collector stand-in in this process
 * (it reads and drops each export), to measure tracing on; unset, tracing is off as by default.
 */
async function otlpSink (): Promise<{ env: Record<string, string>, spansBytes: () => number, close: () => void }> {
  if (process.env.BENCH_TRACING !== '1') return { env: {}, spansBytes: () => 0, close () {} }
  let bytes = 0
  const server = createServer((req, res) => {
    req.on('data', (d: Buffer) => { bytes += d.length })
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'))
  })
  const port = await freePort()
  await new Promise<void>(resolve => server.listen(port, '127.0.0.1', resolve))
  return { env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}` }, spansBytes: () => bytes, close: () => server.close() }
}

async function endToEnd (sources: number, concurrency: number, latencyMs: number): Promise<{ perSecond: number, seconds: number, violations: number, rss: number, cpu: CpuShare, slots: SlotTime }> {
  const [api, sts, rhsm, kafka, otlp] = await Promise.all([startFakeSources({ psk: 'bench-psk-123' }), startFakeSts(), startFakeRhsm(), startMockKafka(), otlpSink()])
  for (const fake of [api, sts, rhsm]) fake.delayMs = latencyMs
  for (let i = 0; i < sources; i++) api.addSource({ sourceId: String(i + 1), applicationId: String(50_000 + i), authenticationId: String(60_000 + i), arn: `arn:aws:iam::${500_000_000_000 + i}:role/r` })
  const status = await collectTopic(kafka.brokers, 'platform.sources.status')
  const server = await cloudoreg({
    SOURCES_API_URL: api.url,
    SOURCES_PSK: 'bench-psk-123',
    RHSM_API_URL: rhsm.url,
    AWS_STS_ENDPOINT: sts.url,
    KAFKA_BROKERS: kafka.brokers.join(','),
    CONCURRENCY: String(concurrency),
    AWS_ACCESS_KEY_ID: 'AKIDBENCH',
    AWS_SECRET_ACCESS_KEY: 'bench-secret',
    ...otlp.env
  })
  const started = Date.now()
  const before = { tree: treeCpu(server.child.pid!, server.dataDir), own: process.cpuUsage(), broker: treeCpu(kafka.pid).self, machine: machineCpu() }
  for (let from = 0; from < sources; from += 1000) {
    const records = []
    for (let i = from; i < Math.min(sources, from + 1000); i++) records.push(createRecord(i, 50_000 + i, 60_000 + i))
    // Like a bridge: a 503 (load shedding on a busy machine) is sent again, or the run would wait for ever.
    while ((await fetch(`${server.url}/internal/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ records }) })).status === 503) {
      await new Promise(resolve => setTimeout(resolve, 1000))
    }
  }
  const pushed = (Date.now() - started) / 1000
  // Checked on every message: read each once (re-reading all of them each time cost the fakes' event loop seconds).
  const reported = new Set<string>()
  let read = 0
  await status.waitFor(m => {
    for (; read < m.length; read++) reported.add(JSON.parse(m[read].value).resource_id)
    return reported.size >= sources
  }, 30 * 60_000)
  const seconds = (Date.now() - started) / 1000
  const tree = treeCpu(server.child.pid!, server.dataDir)
  const own = process.cpuUsage(before.own)
  const machine = machineCpu()
  const ms = (s: number): number => 1000 * s / sources
  const used = {
    cloudoreg: ms(tree.self - before.tree.self),
    postgres: ms(tree.postgres - before.tree.postgres),
    fakes: ms((own.user + own.system) / 1e6),
    broker: ms(treeCpu(kafka.pid).self - before.broker)
  }
  const cpu: CpuShare = {
    ...used,
    other: Math.max(0, ms(machine.busy - before.machine.busy) - used.cloudoreg - used.postgres - used.fakes - used.broker),
    busy: (machine.busy - before.machine.busy) / (machine.total - before.machine.total)
  }
  const rss = peakRss(server.child.pid!)
  const metrics = await (await fetch(`${server.url}/metrics`)).text()
  const call = (target: string): { perSource: number, meanMs: number } => {
    const h = histogram(metrics, 'cloudoreg_upstream_call_seconds', `target="${target}"`)
    return { perSource: h.count / sources, meanMs: h.count === 0 ? 0 : 1000 * h.sum / h.count }
  }
  const mappedAt = rhsm.requests.map(r => (r.at - started) / 1000)
  const slots: SlotTime = {
    calls: { sources: call('sources'), sts: call('sts'), rhsm: call('rhsm') },
    slotMs: 1000 * concurrency * seconds / sources,
    pushed,
    firstCall: (api.requests[0].at - started) / 1000,
    firstMap: Math.min(...mappedAt),
    lastMap: Math.max(...mappedAt),
    end: seconds
  }
  // One event per source: a violation would be a status for a source before RHSM was asked to map it.
  const mapped = new Map<string, number>()
  for (const r of rhsm.requests) mapped.set((r.body as Array<{ sourceId: string }>)[0].sourceId, r.at)
  const violations = sources - mapped.size
  await stop(server.child)
  if (otlp.env.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined) console.log(`tracing on: ${(otlp.spansBytes() / 1024 / sources).toFixed(1)} KiB of OTLP per source exported`)
  otlp.close()
  await status.stop()
  await kafka.stop()
  await Promise.all([api.close(), sts.close(), rhsm.close()])
  rmSync(server.dataDir, { recursive: true, force: true })
  return { perSecond: sources / seconds, seconds, violations, rss, cpu, slots }
}

async function memory (): Promise<void> {
  const api = await startFakeSources({ psk: 'bench-psk-123' })
  api.failureRate = 1
  const server = await cloudoreg({
    SOURCES_API_URL: api.url,
    SOURCES_PSK: 'bench-psk-123',
    RHSM_API_URL: api.url,
    STATUS_SINK: 'none',
    UPSTREAM_CALL_ATTEMPTS: '1',
    UPSTREAM_TIMEOUT_MS: '200',
    RETRY_BASE_DELAY_MS: '1000',
    RETRY_MAX_DELAY_MS: '2000',
    RETRY_MAX_ATTEMPTS: '1000',
    CONCURRENCY: '64',
    ...(process.env.INBOX_WINDOW ? { INBOX_WINDOW: process.env.INBOX_WINDOW } : {})
  })
  api.hangMs = 100
  const total = SMOKE ? 2000 : 100_000
  for (let from = 0; from < total; from += 1000) {
    const records = Array.from({ length: 1000 }, (_, j) => createRecord(from + j, from + j, from + j))
    await fetch(`${server.url}/internal/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ records }) })
  }
  await new Promise(resolve => setTimeout(resolve, SECONDS * 1000))
  report(`4. peak RSS with ${total.toLocaleString('en')} events pending, upstream down`, `${peakRss(server.child.pid!).toFixed(0)} MB`, `VmHWM of the cloudoreg process after pushing ${total / 1000} batches of 1,000 and ${SECONDS} s of failing retries`)
  api.failureRate = 0
  await eventually(async () => {
    const m = /cloudoreg_inbox_pending (\d+)/.exec(await (await fetch(`${server.url}/metrics`)).text())
    return m && Number(m[1]) === 0 ? true : undefined
  }, 30 * 60_000, 'the backlog to drain')
  report('4b. peak RSS after draining it', `${peakRss(server.child.pid!).toFixed(0)} MB`, `VmHWM once the ${total.toLocaleString('en')} events ended (application 404s: quick ends)`)
  await stop(server.child)
  await api.close()
  rmSync(server.dataDir, { recursive: true, force: true })
}

console.log(`machine: ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}${SMOKE ? '; smoke run: sizes and durations too small to mean anything' : ''}`)
// Smoke: every part at a size that runs in seconds.
const E2E = SMOKE ? { sources: 40, one: 4, latencyMs: 10 } : { sources: 2000, one: 100, latencyMs: 100 }
if (!only || only === 'ingest') await ingest()
if (!only || only === 'e2e') {
  const e2e = await endToEnd(E2E.sources, 64, E2E.latencyMs)
  const bound = 64 / (5 * E2E.latencyMs / 1000)
  expectNone('3. order violations', e2e.violations)
  report(`3. end to end, ${E2E.sources} sources, ${E2E.latencyMs} ms per upstream call, CONCURRENCY=64`, `${e2e.perSecond.toFixed(1)} sources/s (${(100 * e2e.perSecond / bound).toFixed(0)}% of the bound ${bound}/s), ${e2e.violations} order violations, peak RSS ${e2e.rss.toFixed(0)} MB; ${slotText(e2e.slots, E2E.sources)}; ${cpuText(e2e.cpu)}`,
    `first push to last availability message on the topic; bound = CONCURRENCY / (5 calls × ${E2E.latencyMs} ms)`)
  const one = await endToEnd(E2E.one, 1, E2E.latencyMs)
  report(`3b. the original strategy: ${E2E.one} sources, CONCURRENCY=1`, `${one.perSecond.toFixed(2)} sources/s; CONCURRENCY=64 is ${(e2e.perSecond / one.perSecond).toFixed(0)}× faster`, 'same, one event at a time')
}
if (!only || only === 'e2e' || only === 'cpu') {
  const cpu = await endToEnd(E2E.sources, 64, 0)
  report(`3c. CPU ceiling: ${E2E.sources} sources, no added latency`, `${cpu.perSecond.toFixed(1)} sources/s; ${cpuText(cpu.cpu)}`, 'fakes, broker and cloudoreg share the 2 cores')
}
if (!only || only === 'memory') await memory()
if (!only || only === 'lanes') {
  await lanesBench({ cloudoreg, stop, report, expectNone }, SMOKE
    ? { orgs: [150, 20, 20, 20], latencyMs: 5, createEveryMs: 200 }
    : { orgs: [15_000, ...Array.from({ length: 9 }, (_, k) => k < 5 ? 556 : 555)], latencyMs: 20, createEveryMs: 2000 })
}
if (!only || only === 'lanes-budget') {
  // The same at the default STS_MAX_RPS, which binds: the create's AssumeRole waits at the rate gate
  // with the re-checks' (customers first there too). A smaller wave: 50 calls/s drain it in about a minute.
  await lanesBench({ cloudoreg, stop, report, expectNone }, SMOKE
    ? { orgs: [60, 10, 10], latencyMs: 5, createEveryMs: 200, stsMaxRps: 50, id: '7' }
    : { orgs: [1_500, ...Array.from({ length: 9 }, () => 100)], latencyMs: 20, createEveryMs: 1000, stsMaxRps: 50, id: '7' })
}
if (!only || only === 'reconcile') await reconcileBench({ smoke: SMOKE, cloudoreg, stop, peakRss, report, expectNone, treeCpu, machineCpu })
console.log('\n| measure | figure | how |\n|---|---|---|')
for (const [what, figure, how] of rows) console.log(`| ${what} | ${figure} | ${how} |`)
if (faults.length > 0) {
  console.error(`\nfaults: ${faults.join('; ')}`)
  process.exitCode = 1
}
