import t, { type Test as Tap } from 'tap'
import { DRIFT_CLASSES } from '../src/reconcile/drift.js'
import { eventually, getJson, inboxStates, ORG, pushNative, startBareApp, startStack, type Stack } from './helpers/stack.js'

const TOKEN = 'internal-token-for-reconcile-0123456789'
const arn = (account: string): string => `arn:aws:iam::${account}:role/redhat-cloud-meter`
const auth = { authorization: `Bearer ${TOKEN}` }

async function post (stack: Stack, body?: unknown, token = TOKEN): Promise<Response> {
  return await fetch(`${stack.url}/internal/v1/reconcile`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
}

async function run (stack: Stack, id: string): Promise<any> {
  return await (await fetch(`${stack.url}/internal/v1/reconcile/${id}`, { headers: auth })).json()
}

/** Starts a run and waits until it has ended; its report. */
async function reconcile (t: Tap, stack: Stack, dryRun: boolean): Promise<any> {
  const res = await post(stack, { dry_run: dryRun })
  const started = await res.json()
  t.equal(res.status, 202, JSON.stringify(started))
  t.match(started, { id: String, dry_run: dryRun, state: 'running' })
  return await eventually(async () => {
    const report = await run(stack, started.id)
    return report.state === 'running' ? undefined : report
  }, 45_000, `reconciliation run ${started.id as string}`)
}

/** Every event ended and every status sent: the system is at rest. */
async function settled (stack: Stack): Promise<void> {
  await eventually(async () => {
    const pending = (await inboxStates(stack)).some(e => e.state === 'pending')
    const { rows: [{ n }] } = await stack.app.store.pool.query('select count(*)::int as n from status_outbox where sent_at is null and not superseded')
    return !pending && n === 0 ? true : undefined
  }, 30_000, 'events ended and statuses sent')
}

function drift (report: any): Array<[string, string | null]> {
  return report.drift.map((d: any) => [d.class, d.source_id]).sort()
}

t.test('one drift of each class: the dry run lists exactly those, the real run repairs them through the queue, a second run finds none', async t => {
  const stack = await startStack(t, { env: { INTERNAL_TOKEN: TOKEN } })
  const { sources, rhsm } = stack
  // Sources 1 to 5 registered by cloudoreg the usual way.
  for (const i of [1, 2, 3, 4, 5]) {
    sources.addSource({ sourceId: String(i), applicationId: String(100 + i), authenticationId: String(200 + i), arn: arn(String(i).repeat(12)), orgId: ORG })
    await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 100 + i, authentication_id: 200 + i })
  }
  await settled(stack)
  t.equal(rhsm.mappings.size, 5)
  const clean = await reconcile(t, stack, true)
  t.match(clean, { state: 'done', checked: 1, total: 1, drift: [], truncated: false, error: null })
  t.same(Object.values(clean.counts), DRIFT_CLASSES.map(() => 0))

  // Then everything that can go wrong without cloudoreg hearing of it.
  rhsm.mappings.delete('2') // rhsm_missing
  sources.applications.get('103')!.availability_status = 'unavailable' // status_mismatch
  sources.authentications.get('204')!.username = arn('455555555555') // arn_changed_without_event
  sources.removeApplication('105') // source_gone
  // unknown_to_cloudoreg: registered by the old system (mapped in RHSM), never pushed to cloudoreg.
  sources.addSource({ sourceId: '6', applicationId: '106', authenticationId: '206', arn: arn('666666666666'), orgId: ORG })
  rhsm.mappings.set('6', { awsAccountId: '666666666666', orgId: ORG })
  rhsm.mappings.set('8', { awsAccountId: '888888888888', orgId: ORG }) // rhsm_orphan: no such source
  const requestsBefore = rhsm.requests.filter(r => r.method !== 'GET').length

  const dry = await reconcile(t, stack, true)
  t.match(dry, { dry_run: true, scheduled: false, state: 'done', checked: 1, total: 1, truncated: false, repairs_queued: 0, error: null, finished_at: String })
  t.same(drift(dry), [
    ['arn_changed_without_event', '4'],
    ['rhsm_missing', '2'],
    ['rhsm_orphan', '8'],
    ['source_gone', '5'],
    ['status_mismatch', '3'],
    ['unknown_to_cloudoreg', '6']
  ], 'exactly the seeded drift, one item per class')
  t.same(dry.counts, Object.fromEntries(DRIFT_CLASSES.map(c => [c, 1])))
  const item = (cls: string): any => dry.drift.find((d: any) => d.class === cls)
  t.match(item('rhsm_orphan'), { org_id: ORG, application_id: null, rhsm_account_id: '888888888888', repair: /remove RHSM's mapping of source 8/ })
  t.match(item('rhsm_missing'), { application_id: '102', rhsm_account_id: null, detail: /RHSM holds no mapping/ })
  t.match(item('arn_changed_without_event'), { detail: /455555555555.*another AWS account/ })
  t.match(item('unknown_to_cloudoreg'), { application_id: '106', rhsm_account_id: '666666666666', repair: /import/ })
  t.equal(rhsm.requests.filter(r => r.method !== 'GET').length, requestsBefore, 'a dry run changes nothing in RHSM')
  t.equal((await inboxStates(stack)).length, 5, 'and queues nothing')

  const metrics = await (await fetch(`${stack.url}/metrics`)).text()
  for (const c of DRIFT_CLASSES) t.match(metrics, new RegExp(`cloudoreg_reconcile_drift\\{class="${c}"\\} 1\\n`))
  const stamp = Number(/^cloudoreg_reconcile_last_run_timestamp_seconds (\S+)$/m.exec(metrics)?.[1])
  t.ok(Math.abs(stamp - Date.parse(dry.finished_at) / 1000) < 1, `the last dry run's end (${stamp}, ${dry.finished_at as string})`)

  const real = await reconcile(t, stack, false)
  t.match(real, { dry_run: false, state: 'done', repairs_queued: 6, error: null })
  t.same(drift(real), drift(dry), 'the real run found the same drift')
  await settled(stack)
  const repairs = (await inboxStates(stack)).filter(e => e.event_type === 'cloudoreg.reconcile')
  t.equal(repairs.length, 6)
  t.ok(repairs.every(e => e.state === 'done'), 'every repair ended done')
  t.same([...rhsm.mappings].map(([source, m]) => [source, m.awsAccountId]).sort(), [
    ['1', '111111111111'], ['2', '222222222222'], ['3', '333333333333'], ['4', '455555555555'], ['6', '666666666666']
  ], 'RHSM holds exactly the mappings sources-api implies')
  t.equal(sources.applications.get('103')!.availability_status, 'available', 'the status was reported again')
  t.match((await getJson(`${stack.url}/api/cloudoreg/v1/sources/6`)).body, { state: 'registered', mapped: true, role_arn: arn('666666666666') }, 'imported without a push')
  t.match((await getJson(`${stack.url}/api/cloudoreg/v1/sources/4`)).body, { state: 'registered', aws_account_id: '455555555555' })
  t.match((await getJson(`${stack.url}/api/cloudoreg/v1/sources/5`)).body, { state: 'removed', mapped: false })
  const history = (await getJson(`${stack.url}/api/cloudoreg/v1/sources/2/history`)).body.timeline.filter((e: any) => e.kind === 'event')
  t.match(history.at(-1), { event_type: 'cloudoreg.reconcile', description: 'repair by reconciliation: remap (rhsm_missing)', state: 'done', outcome: 'registered' },
    'the repair shows in the source\'s history')

  const again = await reconcile(t, stack, false)
  t.match(again, { state: 'done', drift: [], repairs_queued: 0, error: null })
  t.same(Object.values(again.counts), DRIFT_CLASSES.map(() => 0), 'converged: no drift left')
  const after = await (await fetch(`${stack.url}/metrics`)).text()
  t.match(after, /cloudoreg_reconcile_drift\{class="rhsm_orphan"\} 1\n/, 'real runs leave the dry run\'s metrics alone')
})

t.test('the route: operators only, a body that must make sense, 404 for an unknown run, a failing upstream, one run at a time', async t => {
  // A long call timeout: RHSM is made slow below, and a loaded machine must not turn that into a failure.
  const stack = await startStack(t, { env: { INTERNAL_TOKEN: TOKEN, UPSTREAM_CALL_ATTEMPTS: '1', UPSTREAM_TIMEOUT_MS: '20000' } })
  t.equal((await post(stack, {}, 'not-the-token-0123456789012345678')).status, 401)
  t.equal((await fetch(`${stack.url}/internal/v1/reconcile/abc`)).status, 401)
  const bad = await post(stack, { dry_run: 'sometimes' })
  t.equal(bad.status, 400)
  t.match(bad.headers.get('content-type'), /^application\/problem\+json/)
  t.equal((await post(stack, { dry_run: true, extra: 1 })).status, 400)
  const missing = await fetch(`${stack.url}/internal/v1/reconcile/0b7f9d4e-3c1a-4f4e-9d0a-2f1e8c6b5a4d`, { headers: auth })
  t.equal(missing.status, 404)
  t.match(await missing.json(), { detail: /no reconciliation run/ })
  t.equal((await fetch(`${stack.url}/internal/v1/reconcile/NOT_AN_ID`, { headers: auth })).status, 400)

  stack.sources.addSource({ sourceId: '1', applicationId: '101', authenticationId: '201', arn: arn('111111111111'), orgId: ORG })
  stack.rhsm.failNext(1, 503)
  t.match(await reconcile(t, stack, true), { state: 'failed', error: /rhsm: answered 503/, finished_at: String }, 'an upstream that fails: the run fails and says why')

  // RHSM slow, so that the first run is surely still running when the second is asked for.
  stack.rhsm.delayMs = 3000
  const first = await post(stack) // no body: a dry run
  t.equal(first.status, 202)
  const { id, dry_run: dryRun } = await first.json()
  t.equal(dryRun, true)
  const second = await post(stack, { dry_run: false })
  t.equal(second.status, 409)
  t.match(await second.json(), { detail: /in progress/ })
  const report = await eventually(async () => {
    const r = await run(stack, id)
    return r.state === 'running' ? undefined : r
  }, 45_000)
  t.match(report, { state: 'done', total: 1, checked: 1, counts: { unknown_to_cloudoreg: 1 } })
})

t.test('RECONCILE_INTERVAL: scheduled dry runs, one at a time, their counts as metrics', async t => {
  const stack = await startStack(t, { env: { INTERNAL_TOKEN: TOKEN, RECONCILE_INTERVAL: '1' } })
  stack.rhsm.mappings.set('8', { awsAccountId: '888888888888', orgId: ORG })
  stack.sources.addSource({ sourceId: '1', applicationId: '101', authenticationId: '201', arn: arn('111111111111'), orgId: ORG })
  const metrics = await eventually(async () => {
    const text = await (await fetch(`${stack.url}/metrics`)).text()
    return /cloudoreg_reconcile_last_run_timestamp_seconds [1-9]/.test(text) ? text : undefined
  }, 30_000, 'a scheduled run')
  t.match(metrics, /cloudoreg_reconcile_drift\{class="unknown_to_cloudoreg"\} 1\n/)
  t.match(metrics, /cloudoreg_reconcile_drift\{class="source_gone"\} 0\n/)
  const { rows } = await stack.app.store.pool.query('select dry_run, scheduled, state from reconcile_runs')
  t.ok(rows.length >= 1 && rows.every(r => r.dry_run && r.scheduled), 'scheduled runs are dry runs')
  t.equal((await inboxStates(stack)).length, 0, 'and queue nothing')
})

t.test('without upstreams there is nothing to reconcile against', async t => {
  const app = await startBareApp(t, { INTERNAL_TOKEN: TOKEN })
  const res = await app.inject({ method: 'POST', url: '/internal/v1/reconcile', headers: auth, payload: { dry_run: true } })
  t.equal(res.statusCode, 503)
  t.match(res.json(), { detail: /SOURCES_API_URL/ })
  const metrics = (await app.inject({ url: '/metrics' })).body
  t.match(metrics, /cloudoreg_reconcile_last_run_timestamp_seconds 0\n/, 'no run yet')
})
