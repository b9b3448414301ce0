import t from 'tap'
import { eventually, getJson, identities, inboxStates, pushNative, startStack } from './helpers/stack.js'

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
