import t, { type Test as Tap } from 'tap'
import { eventually, getJson, inboxStates, ORG, pushNative, startStack, type Stack } from './helpers/stack.js'

const TOKEN = 'internal-token-for-cutover-0123456789'
const arn = (account: string): string => `arn:aws:iam::${account}:role/redhat-cloud-meter`

async function reconcile (t: Tap, stack: Stack, dryRun: boolean): Promise<any> {
  const res = await fetch(`${stack.url}/internal/v1/reconcile`, {
    method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ dry_run: dryRun })
  })
  t.equal(res.status, 202)
  const { id } = await res.json()
  return await eventually(async () => {
    const report = await (await fetch(`${stack.url}/internal/v1/reconcile/${id as string}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()
    return report.state === 'running' ? undefined : report
  }, 45_000, 'the run')
}

const classes = (report: any): string[] => report.drift.map((d: any) => `${d.class as string} ${d.source_id as string}`).sort()

t.test('the cutover from the old system: shadow mode, a real run that imports, then the status sink on', async t => {
  // What cloudigrade and the autoreg listener left: two cloud-meter sources, mapped in RHSM, reported available.
  // A short lease, so that the reconciliation lease is renewed on its timer during the runs.
  const stack = await startStack(t, { env: { INTERNAL_TOKEN: TOKEN, STATUS_SINK: 'none', LEASE_MS: '3000' } })
  const { sources, rhsm } = stack
  for (const i of [1, 2]) {
    sources.addSource({ sourceId: String(i), applicationId: String(100 + i), authenticationId: String(200 + i), arn: arn(String(i).repeat(12)), orgId: ORG })
    sources.applications.get(String(100 + i))!.availability_status = 'available'
    rhsm.mappings.set(String(i), { awsAccountId: String(i).repeat(12), orgId: ORG })
  }

  // Shadow mode (STATUS_SINK=none, hence RHSM_MODE=dry-run): RHSM is read, never written; nothing is reported.
  const dry = await reconcile(t, stack, true)
  t.same(classes(dry), ['unknown_to_cloudoreg 1', 'unknown_to_cloudoreg 2'])
  const imported = await reconcile(t, stack, false)
  t.match(imported, { state: 'done', repairs_queued: 2 })
  await eventually(async () => (await inboxStates(stack)).every(e => e.state === 'done') ? true : undefined)
  t.match((await getJson(`${stack.url}/api/cloudoreg/v1/sources/1`)).body, { state: 'registered', mapped: true })
  t.equal(rhsm.requests.filter(r => r.method !== 'GET').length, 0, 'RHSM untouched in shadow mode')
  t.equal(sources.patches.length, 0, 'nothing reported in shadow mode')
  t.same(classes(await reconcile(t, stack, true)), [], 'imported: nothing left to do')

  // The status sink on (RHSM live again): the old system's mappings and statuses are what cloudoreg expects.
  await stack.restart({ STATUS_SINK: 'http', INTERNAL_TOKEN: TOKEN })
  t.same(classes(await reconcile(t, stack, true)), [], 'no drift after the switch')

  // A credential replaced while cloudoreg did not hear of it: the application now links another authentication.
  sources.addRole('202', '302', arn('222222222222').replace('redhat-cloud-meter', 'renamed'))
  sources.owners.set('auth:302', ORG)
  sources.removeLinks('102')
  sources.applicationAuthentications.push({ id: '9001', created_at: '', updated_at: '', application_id: '102', authentication_id: '302' })
  const changed = await reconcile(t, stack, true)
  t.same(classes(changed), ['arn_changed_without_event 2'])
  t.match(changed.drift[0].detail, /now has authentication 302/)
  t.match(await reconcile(t, stack, false), { state: 'done', repairs_queued: 1 })
  t.match((await getJson(`${stack.url}/api/cloudoreg/v1/sources/2`)).body, { state: 'registered', authentication_id: '302', role_arn: /renamed/ })
  t.same(classes(await reconcile(t, stack, true)), [])

  // A credential unlinked without an event: the registration's source is gone as far as cloud metering goes.
  sources.removeLinks('101')
  const unlinked = await reconcile(t, stack, true)
  t.same(classes(unlinked), ['source_gone 1'])
  t.match(unlinked.drift[0], { rhsm_account_id: '111111111111', detail: /authentication 201 is no longer linked/ })
  t.match(await reconcile(t, stack, false), { state: 'done', repairs_queued: 1 })
  t.match((await getJson(`${stack.url}/api/cloudoreg/v1/sources/1`)).body, { state: 'removed', mapped: false })
  t.notOk(rhsm.mappings.has('1'), 'its RHSM mapping removed')
  t.same(classes(await reconcile(t, stack, true)), [])

  // A paused source keeps its mapping, unverified until the unpause: a lost mapping comes back without a check.
  sources.setPaused('102', true)
  await pushNative(stack.url, 'Application.pause', { id: 102, source_id: 2 })
  await eventually(async () => (await getJson(`${stack.url}/api/cloudoreg/v1/sources/2`)).body.state === 'paused' ? true : undefined)
  rhsm.mappings.delete('2')
  t.same(classes(await reconcile(t, stack, true)), ['rhsm_missing 2'])
  t.match(await reconcile(t, stack, false), { state: 'done', repairs_queued: 1 })
  t.equal(rhsm.mappings.get('2')?.awsAccountId, '222222222222')
  t.match((await getJson(`${stack.url}/api/cloudoreg/v1/sources/2`)).body, { state: 'paused', mapped: true })
  t.same(classes(await reconcile(t, stack, true)), [])
})
