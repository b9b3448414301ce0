import type { ChildProcess } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { startFakeRhsm } from '../test/helpers/fake-rhsm.js'
import { startFakeSources } from '../test/helpers/fake-sources.js'
import { eventually } from '../test/helpers/stack.js'

// Part 6 of `npm run bench`: a reconciliation dry run over many registrations, against the fakes of
// sources-api and RHSM answering every call after LATENCY_MS, their lists paginated (100 a page).

export interface BenchServer { child: ChildProcess, url: string, dataDir: string, pgPort: number }

export interface ReconcileBenchTools {
  smoke: boolean
  cloudoreg: (env: Record<string, string>) => Promise<BenchServer>
  stop: (child: ChildProcess) => Promise<void>
  peakRss: (pid: number) => number
  report: (what: string, figure: string, how: string) => void
  expectNone: (what: string, count: number) => void
  treeCpu: (pid: number, dataDir?: string) => { self: number, postgres: number }
  machineCpu: () => { busy: number, total: number }
}

const LATENCY_MS = 20
const TOKEN = 'bench-internal-token-0123456789abcdef'
const PSK = 'bench-psk-123'
/** Orgs the plugin sweeps at once (src/plugins/app/reconcile.ts). */
const ORGS_AT_ONCE = 8
const RSS_LIMIT_MB = 256

/** One big org (5,000 sources, 50 pages of each list) and the rest in orgs of 10; `drifted` sources lose their RHSM mapping. */
function layout (total: number): Array<{ org: string, count: number }> {
  const big = Math.floor(total / 4)
  const orgs = [{ org: '9000000', count: big }]
  for (let left = total - big, i = 1; left > 0; left -= 10, i++) orgs.push({ org: String(9000000 + i), count: Math.min(10, left) })
  return orgs
}

export async function reconcileBench (tools: ReconcileBenchTools): Promise<void> {
  const total = tools.smoke ? 400 : 20_000
  const drifted = tools.smoke ? 4 : 100
  const [sources, rhsm] = await Promise.all([startFakeSources({ psk: PSK }), startFakeRhsm()])
  const server = await tools.cloudoreg({ SOURCES_API_URL: sources.url, SOURCES_PSK: PSK, RHSM_API_URL: rhsm.url, STATUS_SINK: 'http', INTERNAL_TOKEN: TOKEN })

  // sources-api and RHSM as cloudoreg left them, and cloudoreg's registrations written straight into its database.
  const orgs = layout(total)
  const rows: unknown[][] = []
  let n = 0
  for (const { org, count } of orgs) {
    for (let i = 0; i < count; i++, n++) {
      const id = String(100000 + n)
      const account = String(100000000000 + n)
      const arn = `arn:aws:iam::${account}:role/r`
      sources.addSource({ sourceId: id, applicationId: id, authenticationId: id, arn, orgId: org }).application.availability_status = 'available'
      if (n >= drifted) rhsm.mappings.set(id, { awsAccountId: account, orgId: org })
      rows.push([id, org, account, arn])
    }
  }
  const password = readFileSync(join(server.dataDir, 'pg-password'), 'utf8').trim()
  const db = new pg.Client({ host: '127.0.0.1', port: server.pgPort, user: 'postgres', password, database: 'postgres' })
  await db.connect()
  const column = (i: number): unknown[] => rows.map(r => r[i])
  await db.query(
    `insert into registrations (application_id, source_id, authentication_id, org_id, aws_account_id, role_arn, state, mapped, verified_at, checked_at)
     select id, id, id, org, account, arn, 'registered', true, now(), now() from unnest($1::text[], $2::text[], $3::text[], $4::text[]) as t(id, org, account, arn)`,
    [column(0), column(1), column(2), column(3)])
  await db.query(
    `insert into status_outbox (application_id, org_id, status, sent_at)
     select id, org, 'available', now() from unnest($1::text[], $2::text[]) as t(id, org)`, [column(0), column(1)])
  await db.end()
  rows.length = 0
  sources.delayMs = LATENCY_MS
  rhsm.delayMs = LATENCY_MS
  const rssBefore = tools.peakRss(server.child.pid!)

  const before = { tree: tools.treeCpu(server.child.pid!, server.dataDir), own: process.cpuUsage(), machine: tools.machineCpu() }
  const started = performance.now()
  const res = await fetch(`${server.url}/internal/v1/reconcile`, {
    method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: '{"dry_run":true}'
  })
  const { id } = await res.json() as { id: string }
  const report = await eventually(async () => {
    const r = await (await fetch(`${server.url}/internal/v1/reconcile/${id}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json() as {
      state: string, counts: Record<string, number>, checked: number, error: string | null
    }
    return r.state === 'running' ? undefined : r
  }, 30 * 60_000, 'the reconciliation run')
  const seconds = (performance.now() - started) / 1000
  const peak = tools.peakRss(server.child.pid!)
  // Where the CPU went meanwhile: cloudoreg, its PostgreSQL, this process (the fakes), everything else on the machine.
  const tree = tools.treeCpu(server.child.pid!, server.dataDir)
  const own = process.cpuUsage(before.own)
  const machine = tools.machineCpu()
  const node = tree.self - before.tree.self
  const postgres = tree.postgres - before.tree.postgres
  const fakes = (own.user + own.system) / 1e6
  const other = Math.max(0, machine.busy - before.machine.busy - node - postgres - fakes)
  const busy = (machine.busy - before.machine.busy) / (machine.total - before.machine.total)
  const cpu = `CPU s: cloudoreg ${node.toFixed(1)}, PostgreSQL ${postgres.toFixed(1)}, fakes ${fakes.toFixed(1)}, other work ${other.toFixed(1)}; machine ${(100 * busy).toFixed(0)}% busy`
  // Nothing else calls the fakes: no event was pushed.
  const calls = sources.requests.length + rhsm.requests.length
  const found = Object.values(report.counts).reduce((a, b) => a + b, 0)
  tools.expectNone('6. reconciliation failed', report.state === 'done' ? 0 : 1)
  tools.expectNone('6. reconciliation drift other than the seeded rhsm_missing', found - report.counts.rhsm_missing)
  tools.expectNone('6. seeded rhsm_missing not found', drifted - report.counts.rhsm_missing)
  tools.expectNone(`6. peak RSS over ${RSS_LIMIT_MB} MB`, peak > RSS_LIMIT_MB ? 1 : 0)
  // The floor of the sweep: the cross-tenant list's pages one after another, then per org its longest list's pages
  // one after another (an org's lists are read at once), ORGS_AT_ONCE orgs at a time.
  const pages = (count: number): number => Math.floor(count / 100) + 1
  const bound = (pages(total) + orgs.reduce((a, o) => a + pages(o.count), 0) / ORGS_AT_ONCE) * LATENCY_MS / 1000
  tools.report(`6. reconciliation dry run, ${total.toLocaleString('en')} registrations in ${orgs.length.toLocaleString('en')} orgs, ${LATENCY_MS} ms per upstream call`,
    `${seconds.toFixed(1)} s (bound ${bound.toFixed(1)} s: pages in sequence × ${LATENCY_MS} ms, ${ORGS_AT_ONCE} orgs at once; ${calls.toLocaleString('en')} calls in all), ${report.state}, ` +
    `${report.counts.rhsm_missing} of ${drifted} seeded drift found; peak RSS ${peak.toFixed(0)} MB (limit ${RSS_LIMIT_MB} MB; ${rssBefore.toFixed(0)} MB before the run); ${cpu}`,
    `POST /internal/v1/reconcile to state done; one org of ${orgs[0].count.toLocaleString('en')} (${Math.ceil(orgs[0].count / 100)} pages per list) and the rest in orgs of 10; VmHWM of the cloudoreg process`)
  await tools.stop(server.child)
  await Promise.all([sources.close(), rhsm.close()])
  rmSync(server.dataDir, { recursive: true, force: true })
}
