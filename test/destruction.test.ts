import t from 'tap'
import { readFixture } from './helpers/fixtures.js'
import { eventually, getJson, inboxStates, ORG, pushNative, startStack, type Stack } from './helpers/stack.js'

// Destructive events act only on what sources-api, asked as the registration's tenant, confirms;
// an operator lifts a tombstone. (Apart from lifecycle.test.ts, which is long enough.)

const ROLE = 'arn:aws:iam::123456789012:role/redhat-cloud-meter'
const POST = 'POST /v1/cloud_access_providers/AWS/accounts'
const DELETE = 'DELETE /v1/cloud_access_providers/accounts?sourceID=7'
const fixture = (name: string): { event_type: string, body: Record<string, unknown> } => readFixture(`events/${name}.json`)
const rhsmCalls = (stack: Stack): string[] => stack.rhsm.requests.map(r => `${r.method} ${r.path}${r.query ? '?' + r.query : ''}`)

async function push (stack: Stack, name: string): Promise<void> {
  const f = fixture(name)
  const res = await pushNative(stack.url, f.event_type, f.body, { 'webhook-id': `${name}-${Math.random()}` })
  if (res.status !== 202) throw new Error(`${name}: push answered ${res.status}`)
}

async function settled (stack: Stack): Promise<Array<{ event_type: string, state: string, outcome: string | null }>> {
  return eventually(async () => {
    const rows = await inboxStates(stack)
    return rows.every(r => r.state !== 'pending') ? rows : undefined
  }, 60_000, 'every event to end')
}

async function source7 (stack: Stack): Promise<any> {
  return (await getJson(`${stack.url}/api/cloudoreg/v1/sources/7`)).body
}

async function registered (stack: Stack): Promise<void> {
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE, externalId: 'ext' })
  await push(stack, 'app-auth-create')
  await settled(stack)
  t.equal((await source7(stack)).state, 'registered')
}

t.test('destruction is acted on only once sources-api confirms it; an operator lifts a tombstone, audited in the history', async t => {
  const INTERNAL_TOKEN = 'internal-token-lifecycle-0123456789abcd'
  const stack = await startStack(t, { env: { INTERNAL_TOKEN } })
  await registered(stack)

  // sources-api still has the application, its link, and it is not paused: each event is a no-op.
  for (const name of ['app-auth-destroy', 'application-pause', 'application-destroy', 'source-destroy']) await push(stack, name)
  t.same((await settled(stack)).slice(1).map(r => r.outcome), [
    'link still exists in sources-api; nothing removed',
    'not paused in sources-api; nothing changed',
    'application still exists in sources-api; nothing removed',
    'application still exists in sources-api; nothing removed'
  ])
  t.same(rhsmCalls(stack), [POST])
  t.match(await source7(stack), { state: 'registered', mapped: true })
  t.match(stack.sources.requests.at(-1)!.headers, { 'x-rh-sources-org-id': ORG }, 'asked as the registration\'s tenant')

  // An unpause sources-api does not confirm leaves a paused registration paused.
  stack.sources.setPaused('42', true)
  await push(stack, 'application-pause')
  await push(stack, 'application-unpause')
  t.same((await settled(stack)).slice(-2).map(r => r.outcome), ['paused', 'still paused in sources-api'])
  t.match(await source7(stack), { state: 'paused' })

  // Once the application is really gone: unmapped, tombstoned.
  stack.sources.removeApplication('42')
  await push(stack, 'application-destroy')
  t.equal((await settled(stack)).at(-1)!.outcome, 'mapping removed')
  t.same(rhsmCalls(stack), [POST, DELETE])

  const lift = async (id: string, token = INTERNAL_TOKEN): Promise<Response> =>
    fetch(`${stack.url}/internal/v1/tombstones/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } })
  t.equal((await lift('42', 'wrong-token-0123456789')).status, 401)
  t.equal((await lift('43')).status, 404, 'no tombstone')
  const lifted = await lift('42')
  t.equal(lifted.status, 200)
  t.same(await lifted.json(), { lifted: [{ application_id: '42', source_id: '7', org_id: ORG }] })
  t.equal((await lift('42')).status, 404, 'lifted once')

  // The application comes back in sources-api: a create maps it again, and the history says why it could.
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE })
  await push(stack, 'app-auth-create')
  t.equal((await settled(stack)).at(-1)!.outcome, 'registered')
  t.same(rhsmCalls(stack), [POST, DELETE, POST])
  const history = (await getJson(`${stack.url}/api/cloudoreg/v1/sources/7/history`)).body
  t.match(history.audit, [{ action: 'tombstone_lifted', event_id: null, detail: /tombstone lifted by an operator/ }])
})
