import t from 'tap'
import { eventually, getJson, identities, inboxStates, ORG, pushNative, startStack, type Stack } from './helpers/stack.js'

const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64')
const A = identities.base64.user_7654321
const B = identities.base64.user_other_org_1111111

t.test('one org never sees, counts or learns of another org\'s sources, on every public route', async t => {
  const stack = await startStack(t)
  // org A: sources 1..3; org B: source 50
  for (let i = 1; i <= 3; i++) {
    stack.sources.addSource({ sourceId: String(i), applicationId: String(100 + i), authenticationId: String(200 + i), arn: `arn:aws:iam::10000000000${i}:role/r` })
    await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 100 + i, authentication_id: 200 + i })
  }
  stack.sources.addSource({ sourceId: '50', applicationId: '150', authenticationId: '250', arn: 'arn:aws:iam::200000000000:role/r' })
  await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 150, authentication_id: 250 },
    { 'x-rh-sources-org-id': '1111111', 'x-rh-identity': B, 'x-rh-sources-account-number': '' })
  await eventually(async () => (await inboxStates(stack)).every(r => r.state === 'done') ? true : undefined)

  const listA = await getJson(`${stack.url}/api/cloudoreg/v1/sources?limit=2`, A)
  t.equal(listA.body.meta.count, 3)
  t.same(listA.body.data.map((s: any) => s.source_id), ['1', '2'])
  t.equal(listA.body.links.last, '/api/cloudoreg/v1/sources?limit=2&offset=2')
  const listB = await getJson(`${stack.url}/api/cloudoreg/v1/sources`, B)
  t.equal(listB.body.meta.count, 1)
  t.same(listB.body.data.map((s: any) => s.source_id), ['50'])
  t.equal((await getJson(`${stack.url}/api/cloudoreg/v1/sources?state=registered`, B)).body.meta.count, 1)

  for (const path of ['/sources/1', '/sources/1/history']) {
    const theirs = await getJson(`${stack.url}/api/cloudoreg/v1${path}`, B)
    const missing = await getJson(`${stack.url}/api/cloudoreg/v1${path.replace('/1', '/999')}`, B)
    t.equal(theirs.status, 404, `${path}: 404, not 403`)
    t.same({ ...theirs.body, instance: undefined, detail: theirs.body.detail.replace('1', 'X') },
      { ...missing.body, instance: undefined, detail: missing.body.detail.replace('999', 'X') }, `${path}: indistinguishable from a source that does not exist`)
    t.equal((await getJson(`${stack.url}/api/cloudoreg/v1${path}`, A)).status, 200)
  }
  t.equal((await getJson(`${stack.url}/api/cloudoreg/v1/sources/50/history`, A)).status, 404)
})

t.test('identities without org_id, with a non-object identity, or not base64 are refused with 401 on every public route', async t => {
  const stack = await startStack(t)
  const bad = {
    'no header': undefined,
    'not base64': '!!not-base64!!',
    'base64 of text': b64('hello'),
    'no org_id': b64({ identity: { account_number: '1', type: 'User' } }),
    'non-object identity': b64({ identity: 'org_id=7654321' }),
    'array identity': b64({ identity: ['7654321'] }),
    'numeric org_id': b64({ identity: { org_id: 7654321 } })
  }
  for (const path of ['/sources', '/sources/7', '/sources/7/history']) {
    for (const [name, identity] of Object.entries(bad)) {
      const res = await fetch(`${stack.url}/api/cloudoreg/v1${path}`, { headers: identity === undefined ? {} : { 'x-rh-identity': identity } })
      t.equal(res.status, 401, `${path}: ${name}`)
      t.match(res.headers.get('content-type'), /application\/problem\+json/)
    }
  }
})

const ROLE = 'arn:aws:iam::123456789012:role/redhat-cloud-meter'
const ORG_B = { 'x-rh-sources-org-id': '1111111', 'x-rh-identity': B, 'x-rh-sources-account-number': '' }
const REFUSED = 'refused: the application belongs to another org; nothing changed'

async function pushed (res: Promise<Response>): Promise<void> {
  const { status } = await res
  if (status !== 202) throw new Error(`push answered ${status}`)
}

async function settled (stack: Stack): Promise<Array<{ id: number, event_type: string, state: string, outcome: string | null }>> {
  return eventually(async () => {
    const rows = await inboxStates(stack)
    return rows.every(r => r.state !== 'pending') ? rows : undefined
  }, 60_000, 'every event to end')
}

t.test('three events claiming org B and naming org A\'s application change nothing for A; A\'s history shows them refused', async t => {
  const stack = await startStack(t)
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE, orgId: ORG })
  await pushed(pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 42, authentication_id: 311 }, { 'webhook-id': 'a-create' }))
  await settled(stack)
  t.match((await getJson(`${stack.url}/api/cloudoreg/v1/sources/7`, A)).body, { state: 'registered', mapped: true })

  // The reproduction of the issue: the link destroyed, the application paused, then destroyed, each claiming org B.
  const attack: Array<[string, Record<string, unknown>]> = [
    ['ApplicationAuthentication.destroy', { id: 99, application_id: 42, authentication_id: 311 }],
    ['Application.pause', { id: 42, source_id: 7, application_type_id: 5 }],
    ['Application.destroy', { id: 42, source_id: 7, application_type_id: 5 }]
  ]
  for (const [type, body] of attack) await pushed(pushNative(stack.url, type, body, { ...ORG_B, 'webhook-id': `b-${type}` }))
  const rows = await settled(stack)
  const refused = rows.slice(1)
  t.same(refused.map(r => [r.event_type, r.state, r.outcome]), attack.map(([type]) => [type, 'done', REFUSED]))

  t.match((await getJson(`${stack.url}/api/cloudoreg/v1/sources/7`, A)).body, { state: 'registered', mapped: true, org_id: ORG })
  t.same(stack.rhsm.requests.map(r => r.method), ['POST'], 'no RHSM removal, with any org\'s account id')
  t.equal(stack.rhsm.mappings.size, 1)
  const { rows: tombstones } = await stack.app.store.pool.query('select * from destroyed_applications')
  t.same(tombstones, [], 'no tombstone')
  t.equal(stack.logs.filter(l => l.includes('event refused: its org does not own the application')).length, 3, 'each refusal logged')

  // A's history shows the three refused events and why; B sees nothing of A's source.
  const history = await getJson(`${stack.url}/api/cloudoreg/v1/sources/7/history`, A)
  t.same(history.body.timeline.filter((e: any) => e.kind === 'event').map((e: any) => [e.event_type, e.outcome]), [
    ['ApplicationAuthentication.create', 'registered'], ...attack.map(([type]) => [type, REFUSED])
  ])
  t.same(history.body.audit.map((a: any) => [a.action, a.event_id]), refused.map(r => ['refused', r.id]))
  t.equal((await getJson(`${stack.url}/api/cloudoreg/v1/sources/7/history`, B)).status, 404)

  // A's own re-emitted create still works: nothing was tombstoned.
  await pushed(pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 42, authentication_id: 311 }, { 'webhook-id': 'a-create-2' }))
  t.equal((await settled(stack)).at(-1)!.outcome, 'verified; mapping already held')
})

t.test('an Application.destroy claiming org B for an application A has not registered yet does not block A\'s create', async t => {
  const stack = await startStack(t)
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE, orgId: ORG })
  await pushed(pushNative(stack.url, 'Application.destroy', { id: 42, source_id: 7, application_type_id: 5 }, { ...ORG_B, 'webhook-id': 'b-destroy' }))
  await settled(stack)
  await pushed(pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 42, authentication_id: 311 }, { 'webhook-id': 'a-create' }))
  t.equal((await settled(stack)).at(-1)!.outcome, 'registered')
  t.match((await getJson(`${stack.url}/api/cloudoreg/v1/sources/7`, A)).body, { state: 'registered', mapped: true })
})
