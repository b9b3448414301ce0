import t from 'tap'
import { readFixture } from './helpers/fixtures.js'
import { eventually, getJson, identities, inboxStates, ORG, outboxSettled, pushNative, startStack, type Stack } from './helpers/stack.js'

const ROLE = 'arn:aws:iam::123456789012:role/redhat-cloud-meter'
const fixture = (name: string): { event_type: string, body: Record<string, unknown> } => readFixture(`events/${name}.json`)

async function push (stack: Stack, name: string, body?: Record<string, unknown>, headers?: Record<string, string>): Promise<void> {
  const f = fixture(name)
  const res = await pushNative(stack.url, f.event_type, body ?? f.body, { 'webhook-id': `${name}-${Math.random()}`, ...headers })
  if (res.status !== 202) throw new Error(`${name}: push answered ${res.status}`)
}

async function settled (stack: Stack): Promise<Array<{ event_type: string, state: string, outcome: string | null }>> {
  return eventually(async () => {
    const rows = await inboxStates(stack)
    return rows.every(r => r.state !== 'pending') ? rows : undefined
  }, 20_000, 'every event to end')
}

async function source7 (stack: Stack): Promise<any> {
  return (await getJson(`${stack.url}/api/cloudoreg/v1/sources/7`)).body
}

async function check (stack: Stack, sourceId: string): Promise<Response> {
  return fetch(`${stack.url}/internal/api/cloudoreg/v1/availability_status`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-rh-identity': identities.base64.system_7654321, 'x-rh-sources-org-id': ORG },
    body: JSON.stringify({ source_id: sourceId })
  })
}

const rhsmCalls = (stack: Stack): string[] => stack.rhsm.requests.map(r => `${r.method} ${r.path}${r.query ? '?' + r.query : ''}`)
const POST = 'POST /v1/cloud_access_providers/AWS/accounts'
const DELETE = 'DELETE /v1/cloud_access_providers/accounts?sourceID=7'
const statuses = (stack: Stack): string[] => stack.sources.patches.map(p => (p.body as Record<string, string>).availability_status)

async function registered (stack: Stack): Promise<void> {
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE, externalId: 'ext' })
  await push(stack, 'app-auth-create')
  await settled(stack)
  t.equal((await source7(stack)).state, 'registered')
  // Its report is out before the test changes sources-api (a PATCH of a deleted application is dropped).
  await eventually(() => stack.sources.patches.length >= 1 ? true : undefined)
}

t.test('the wizard order: Application.create and Authentication.create around the link; one mapping, one report', async t => {
  const stack = await startStack(t)
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE })
  const sourceCreate = fixture('source-destroy').body
  const res = await pushNative(stack.url, 'Source.create', sourceCreate, { 'webhook-id': 'source-create' })
  t.equal(res.status, 202)
  await push(stack, 'application-create')
  await push(stack, 'app-auth-create')
  await push(stack, 'authentication-create')
  const rows = await settled(stack)
  t.same(rows.map(r => [r.event_type, r.state]), [
    ['Source.create', 'ignored'], ['Application.create', 'ignored'], ['ApplicationAuthentication.create', 'done'], ['Authentication.create', 'ignored']
  ])
  t.same(rhsmCalls(stack), [POST])
  await eventually(() => stack.sources.patches.length === 1 ? true : undefined)
  t.same(statuses(stack), ['available'])
})

t.test('a source deletion removes the mapping once, reports nothing, and a late create does not map it again', async t => {
  const stack = await startStack(t)
  await registered(stack)
  // sources-api emits the destroy events once the customer's deletion is done.
  stack.sources.removeApplication('42')
  for (const name of ['app-auth-destroy', 'application-destroy', 'source-destroy', 'authentication-destroy']) await push(stack, name)
  const rows = await settled(stack)
  t.same(rows.slice(1).map(r => [r.event_type, r.state, r.outcome]), [
    ['ApplicationAuthentication.destroy', 'done', 'mapping removed'],
    ['Application.destroy', 'done', 'nothing mapped'],
    ['Source.destroy', 'done', 'nothing mapped'],
    // The registration is already removed: the credential's deletion has nothing left to unmap.
    ['Authentication.destroy', 'done', 'no registration']
  ])
  t.same(rhsmCalls(stack), [POST, DELETE])
  t.match(stack.rhsm.requests[1].headers, { 'x-rhsmapi-accountid': ORG })
  t.equal(stack.rhsm.mappings.size, 0)
  t.match(await source7(stack), { state: 'removed', mapped: false })

  await push(stack, 'app-auth-create')
  const late = await settled(stack)
  t.equal(late.at(-1)!.outcome, 'application was destroyed; not mapped again')
  t.same(rhsmCalls(stack), [POST, DELETE], 'no new mapping')
  await new Promise(resolve => setTimeout(resolve, 300))
  t.same(statuses(stack), ['available'], 'nothing reported for the deletion')
})

t.test('Application.destroy of a cloud-meter application registered before cloudoreg existed: removed by source id', async t => {
  const stack = await startStack(t)
  stack.rhsm.mappings.set('7', { awsAccountId: '123456789012', orgId: ORG })
  await push(stack, 'application-destroy')
  t.same((await settled(stack)).map(r => r.outcome), ['mapping removed by source id (no local registration)'])
  t.same(rhsmCalls(stack), [DELETE])
  t.equal(stack.rhsm.mappings.size, 0)
})

t.test('an ARN edit: same account keeps the mapping; another account moves it', async t => {
  const stack = await startStack(t)
  await registered(stack)
  stack.sources.authentications.get('311')!.username = 'arn:aws:iam::123456789012:role/renamed'
  await push(stack, 'authentication-update')
  await settled(stack)
  t.same(rhsmCalls(stack), [POST], 'same AWS account: no RHSM change')
  t.match(await source7(stack), { state: 'registered', role_arn: 'arn:aws:iam::123456789012:role/renamed' })

  stack.sources.authentications.get('311')!.username = 'arn:aws:iam::210987654321:role/moved'
  await push(stack, 'authentication-update')
  await settled(stack)
  t.same(rhsmCalls(stack), [POST, DELETE, POST], 'the old mapping goes, the new one comes')
  t.same(stack.rhsm.requests[2].body, [{ id: '210987654321', nickname: '', verified: true, sourceId: '7' }])
  t.match(await source7(stack), { state: 'registered', aws_account_id: '210987654321', mapped: true })
  await eventually(() => stack.sources.patches.length === 3 ? true : undefined)
  t.same(statuses(stack), ['available', 'available', 'available'])
})

t.test('Authentication.update with no registration yet finds the link and runs the create flow', async t => {
  const stack = await startStack(t)
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE })
  await push(stack, 'authentication-update', { ...fixture('authentication-update').body, resource_id: 99 })
  t.same((await settled(stack)).map(r => r.outcome), ['registered'])
  t.ok(stack.sources.requests.some(r => r.path === '/api/sources/v3.1/application_authentications' && /authentication_id\]=311/.test(decodeURIComponent(r.query))))
  t.match(await source7(stack), { state: 'registered', application_id: '42' })
})

t.test('pause, re-check while paused (nothing), an ARN edit while paused (stored), unpause (verified and reported)', async t => {
  const stack = await startStack(t)
  await registered(stack)
  stack.sources.setPaused('42', true)
  await push(stack, 'application-pause')
  await settled(stack)
  t.match(await source7(stack), { state: 'paused', mapped: true })

  const before = (await inboxStates(stack)).length
  t.equal((await check(stack, '7')).status, 204)
  t.equal((await inboxStates(stack)).length, before, 'nothing queued for a paused source')

  stack.sources.authentications.get('311')!.username = 'arn:aws:iam::123456789012:role/edited'
  await push(stack, 'authentication-update')
  await settled(stack)
  t.match(await source7(stack), { state: 'paused', role_arn: 'arn:aws:iam::123456789012:role/edited' })
  t.equal(stack.sts.calls.filter(c => c.action === 'AssumeRole').length, 1, 'not verified while paused')
  await new Promise(resolve => setTimeout(resolve, 300))
  t.same(statuses(stack), ['available'], 'nothing reported while paused')

  stack.sources.setPaused('42', false)
  await push(stack, 'application-unpause')
  await settled(stack)
  t.equal(stack.sts.calls.filter(c => c.action === 'AssumeRole').at(-1)!.params.RoleArn, 'arn:aws:iam::123456789012:role/edited')
  t.match(await source7(stack), { state: 'registered' })
  await eventually(() => stack.sources.patches.length === 2 ? true : undefined)
  t.same(rhsmCalls(stack), [POST])
})

t.test('a periodic re-check after the customer broke the role reports CG3002 and keeps the mapping', async t => {
  // Every check verifies again (no reuse of a recent result).
  const stack = await startStack(t, { env: { CHECK_REUSE_SECONDS: '0' } })
  await registered(stack)
  stack.sts.deny.add(ROLE)
  t.equal((await check(stack, '7')).status, 204)
  await eventually(async () => (await source7(stack)).state === 'unavailable' ? true : undefined)
  t.match(await source7(stack), { state: 'unavailable', mapped: true, error: { code: 'CG3002' } })
  await eventually(() => stack.sources.patches.length === 2 ? true : undefined)
  t.same(statuses(stack), ['available', 'unavailable'])

  const bad = await fetch(`${stack.url}/internal/api/cloudoreg/v1/availability_status`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-rh-sources-org-id': ORG }, body: '{}'
  })
  t.equal(bad.status, 400)
  const anonymous = await fetch(`${stack.url}/internal/api/cloudoreg/v1/availability_status`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"source_id":"7"}'
  })
  t.equal(anonymous.status, 401)
})

t.test('a re-check of an unknown source registers a cloud-meter application created before cloudoreg', async t => {
  const stack = await startStack(t)
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE })
  stack.sources.addSource({ sourceId: '7', applicationId: '43', authenticationId: '312', arn: ROLE, applicationTypeId: '2' })
  t.equal((await check(stack, '7')).status, 204)
  await eventually(async () => (await getJson(`${stack.url}/api/cloudoreg/v1/sources/7`)).body.state === 'registered' ? true : undefined)
  t.match(await source7(stack), { application_id: '42', authentication_id: '311' })
  t.equal((await check(stack, '8')).status, 204, 'a source sources-api does not know')
  t.equal((await settled(stack)).at(-1)!.outcome, 'source not found in sources-api')
  stack.sources.addSource({ sourceId: '10', applicationId: '70', authenticationId: '710', arn: ROLE, applicationTypeId: '2' })
  t.equal((await check(stack, '10')).status, 204, 'a source with nothing for us')
  t.equal((await settled(stack)).at(-1)!.outcome, 'source has no cloud-meter application')
})

t.test('two orgs claiming one AWS account: the second gets CR4001 without an RHSM call; the same ARN twice in one org gets CG1001', async t => {
  const stack = await startStack(t)
  await registered(stack)
  stack.sources.addSource({ sourceId: '8', applicationId: '52', authenticationId: '411', arn: 'arn:aws:iam::123456789012:role/theirs' })
  await push(stack, 'app-auth-create', { application_id: 52, authentication_id: 411 },
    { 'x-rh-sources-org-id': '1111111', 'x-rh-identity': identities.base64.user_other_org_1111111, 'x-rh-sources-account-number': '' })
  stack.sources.addSource({ sourceId: '9', applicationId: '62', authenticationId: '511', arn: ROLE })
  await push(stack, 'app-auth-create', { application_id: 62, authentication_id: 511 })
  await settled(stack)
  const theirs = await getJson(`${stack.url}/api/cloudoreg/v1/sources/8`, identities.base64.user_other_org_1111111)
  t.match(theirs.body, { state: 'unavailable', error: { code: 'CR4001' } })
  const twin = await getJson(`${stack.url}/api/cloudoreg/v1/sources/9`)
  t.match(twin.body, { state: 'unavailable', error: { code: 'CG1001' } })
  t.same(rhsmCalls(stack), [POST], 'only the first org was mapped')
})

t.test('five re-emitted creates: one RHSM call, five available reports', async t => {
  const stack = await startStack(t)
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE })
  for (let i = 0; i < 5; i++) await push(stack, 'app-auth-create')
  const rows = await settled(stack)
  t.equal(rows.length, 5)
  t.same(rhsmCalls(stack), [POST])
  // Each create decides `available`; a status decided before the previous one left supersedes it.
  const outbox = await outboxSettled(stack, 5)
  t.same(outbox.map(r => r.status), ['available', 'available', 'available', 'available', 'available'], 'five available reports decided')
  t.ok(outbox.at(-1)!.sent, 'the last one sent')
  t.equal(stack.sources.patches.length, outbox.filter(r => r.sent).length, 'one PATCH per sent report')
  t.ok(statuses(stack).every(s => s === 'available'), 'every PATCH says available')
})
