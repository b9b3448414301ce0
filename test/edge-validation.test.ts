import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { ACCOUNT, identities, injectPastShedding, ORG, startBareApp } from './helpers/stack.js'

// Inputs are validated where they arrive: tenant numbers from every channel, numbers that reach a
// column, ids in event bodies, record-batch coordinates, identities. The answer is a 4xx naming what
// was wrong, never a 500 from PostgreSQL, never an event acting on another resource than it names.

const TOKEN = 'internal-token-edge-validation-0123456789'
let app: FastifyInstance
const logs: string[] = []

t.before(async () => {
  app = await startBareApp(t, { LOG_LEVEL: 'info', INTERNAL_TOKEN: TOKEN }, logs)
})
t.beforeEach(async () => {
  await app.store.pool.query('truncate inbox, delivery_keys')
})

const b64 = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64')
const native = { 'content-type': 'application/json', event_type: 'ApplicationAuthentication.create', 'x-rh-sources-org-id': ORG }
const create = JSON.stringify({ application_id: 42, authentication_id: 311 })

async function push (headers: Record<string, string>, payload: string): Promise<LightMyRequestResponse> {
  return injectPastShedding(app, { method: 'POST', url: '/internal/v1/events', headers, payload })
}

async function rows (): Promise<Array<{ org_id: string, account_number: string | null, body: any, delivery_id: string | null }>> {
  return (await app.store.pool.query('select org_id, account_number, body, delivery_id from inbox order by id')).rows
}

function recordBatch (record: Record<string, unknown>, headers: Record<string, string> = {}): string {
  return JSON.stringify({
    records: [{
      topic: 'platform.sources.event-stream',
      partition: 0,
      offset: 5,
      value: { application_id: 42, authentication_id: 311 },
      headers: Object.entries({ event_type: 'ApplicationAuthentication.create', 'x-rh-sources-org-id': ORG, ...headers }).map(([key, value]) => ({ key, value: b64(value) })),
      ...record
    }]
  })
}

t.test('org ids are digits of bounded length from every channel (400); an account number that is not one is dropped with a log line', async t => {
  const refused: Array<[string, Record<string, string>, string, RegExp]> = [
    ['letters in the org id header', { ...native, 'x-rh-sources-org-id': 'abc' }, create, /x-rh-sources-org-id is not a valid org id/],
    ['an org id of 33 digits', { ...native, 'x-rh-sources-org-id': '1'.repeat(33) }, create, /x-rh-sources-org-id is not a valid org id/],
    ['a CR/LF org id in a record header', { 'content-type': 'application/json' }, recordBatch({}, { 'x-rh-sources-org-id': `${ORG}\r\nx: 1` }), /records\[0\] x-rh-sources-org-id is not a valid org id/],
    ['a NUL org id in a record header', { 'content-type': 'application/json' }, recordBatch({}, { 'x-rh-sources-org-id': `${ORG}\u0000` }), /records\[0\] x-rh-sources-org-id is not a valid org id/],
    ['letters in the identity org_id', { 'content-type': 'application/json', event_type: 'Source.destroy', 'x-rh-identity': b64({ identity: { org_id: 'a-b', type: 'System' } }) }, '{"id":7}',
      /no org id: .*org_id that is not an org id/]
  ]
  for (const [what, headers, body, detail] of refused) {
    const res = await push(headers, body)
    t.equal(res.statusCode, 400, what)
    t.match(res.json(), { detail }, what)
  }
  t.same(await rows(), [], 'nothing stored')

  logs.length = 0
  t.equal((await push({ 'content-type': 'application/json' }, recordBatch({}, { 'x-rh-sources-account-number': `${ACCOUNT}\r\nX-Evil: 1` }))).statusCode, 202,
    'a CR/LF account number in a record header')
  t.equal((await push({ ...native, 'x-rh-sources-account-number': '12ab', 'webhook-id': 'acct-1' }, create)).statusCode, 202, 'letters in the account header')
  t.equal((await push({ 'content-type': 'application/json', event_type: 'Source.destroy', 'x-rh-identity': b64({ identity: { org_id: ORG, account_number: '1\u00002', type: 'System' } }) }, '{"id":7}')).statusCode,
    202, 'a NUL account number in the identity')
  t.same((await rows()).map(r => [r.org_id, r.account_number]), [[ORG, null], [ORG, null], [ORG, null]], 'stored without the account number')
  const notes = logs.map(l => JSON.parse(l)).filter(l => l.msg === 'push accepted without what it could not use').map(l => l.notes.join())
  t.match(notes, [/records\[0\] x-rh-sources-account-number is not an account number/, /x-rh-sources-account-number is not an account number/, /account_number in x-rh-identity is not an account number/])
  t.notOk(logs.join('').includes('X-Evil'), 'the refused value is not logged')

  // The availability check: its org id header too (400), and its account number.
  const check = (headers: Record<string, string>): Promise<LightMyRequestResponse> =>
    injectPastShedding(app, { method: 'POST', url: '/internal/api/cloudoreg/v1/availability_status', headers: { 'content-type': 'application/json', ...headers }, payload: '{"source_id":"7"}' })
  const bad = await check({ 'x-rh-sources-org-id': 'abc', 'x-rh-identity': identities.base64.system_7654321 })
  t.equal(bad.statusCode, 400, 'letters in the check\'s org id header, even beside a valid identity')
  t.match(bad.json(), { detail: /x-rh-sources-org-id is not a valid org id/ })
  await app.store.pool.query('truncate inbox')
  t.equal((await check({ 'x-rh-sources-org-id': ORG, 'x-rh-sources-account-number': '1 2' })).statusCode, 204)
  t.same((await rows()).map(r => [r.org_id, r.account_number]), [[ORG, null]], 'the check is queued without the account number')
})

t.test('numeric query and path inputs are bounded to their columns: 400, never a 500 from PostgreSQL', async t => {
  const identity = { 'x-rh-identity': identities.base64.user_7654321 }
  const operator = { authorization: `Bearer ${TOKEN}` }
  const cases: Array<[string, string, Record<string, string>]> = [
    ['GET', '/api/cloudoreg/v1/sources?offset=1e30', identity],
    ['GET', '/api/cloudoreg/v1/sources?offset=99999999999999999999', identity],
    ['GET', '/api/cloudoreg/v1/sources?offset=9007199254740993', identity],
    ['GET', '/api/cloudoreg/v1/sources?limit=1e30', identity],
    ['GET', '/internal/v1/dead-letters?offset=1e30', operator],
    ['POST', '/internal/v1/events/1e21/replay', operator],
    ['POST', '/internal/v1/events/99999999999999999999/replay', operator],
    ['POST', '/internal/v1/events/-1/replay', operator],
    ['POST', '/internal/v1/sources/123456789012345678901/reverify', operator],
    ['GET', '/api/cloudoreg/v1/sources/1e3', identity]
  ]
  for (const [method, url, headers] of cases) {
    const res = await injectPastShedding(app, { method: method as 'GET' | 'POST', url, headers })
    t.equal(res.statusCode, 400, `${method} ${url}`)
    t.match(res.headers['content-type'], /application\/problem\+json/)
  }
  t.equal((await injectPastShedding(app, { method: 'GET', url: '/api/cloudoreg/v1/sources?offset=9007199254740991', headers: identity })).statusCode, 200, 'the largest offset allowed')
  t.equal((await injectPastShedding(app, { method: 'POST', url: '/internal/v1/events/9007199254740991/replay', headers: operator })).statusCode, 404, 'the largest id allowed')
})

t.test('ids in event bodies are decimal strings or exact integers: 1e21 and 2^53+1 are refused, not rounded to another resource', async t => {
  const refused: Array<[string, string, RegExp]> = [
    ['ApplicationAuthentication.create', '{"application_id":1e21,"authentication_id":311}', /body\.application_id is not an id/],
    ['ApplicationAuthentication.create', '{"application_id":9007199254740993,"authentication_id":311}', /body\.application_id is not an id/],
    ['ApplicationAuthentication.create', '{"application_id":42,"authentication_id":-1}', /body\.authentication_id is not an id/],
    ['Application.destroy', '{"id":42,"source_id":"7a"}', /body\.source_id is not an id/],
    ['Application.pause', '{"id":4.5}', /body\.id is not an id/],
    ['Authentication.update', '{"id":"311","resource_type":"Application","resource_id":true}', /body\.resource_id is not an id/],
    ['Source.destroy', '{"id":"123456789012345678901"}', /body\.id is not an id/]
  ]
  for (const [eventType, body, detail] of refused) {
    const res = await push({ ...native, event_type: eventType }, body)
    t.equal(res.statusCode, 400, `${eventType} ${body}`)
    t.match(res.json(), { detail }, `${eventType} ${body}`)
  }
  t.same(await rows(), [])
  t.equal((await push({ ...native, 'webhook-id': 'ids-1' }, '{"application_id":"9007199254740993","authentication_id":9007199254740991}')).statusCode, 202,
    'a decimal string of any int64 and the largest exact integer are ids')
  t.equal((await push({ ...native, event_type: 'Records.update', 'webhook-id': 'ids-2' }, '{"id":1e21}')).statusCode, 202, 'an event type cloudoreg ignores keeps its body as it is')

  const check = async (payload: string): Promise<number> => (await injectPastShedding(app, {
    method: 'POST', url: '/internal/api/cloudoreg/v1/availability_status', headers: { 'content-type': 'application/json', 'x-rh-sources-org-id': ORG }, payload
  })).statusCode
  t.equal(await check('{"source_id":1e21}'), 400, 'the availability check refuses 1e21')
  t.equal(await check('{"source_id":9007199254740993}'), 400, 'and 2^53+1')
  t.equal(await check('{"source_id":9007199254740991}'), 204)
})

t.test('record-batch partition and offset are non-negative integers in Kafka\'s range', async t => {
  const refused: Array<[Record<string, unknown>, RegExp]> = [
    [{ partition: true }, /records\[0\] partition must be an integer/],
    [{ partition: '0x10' }, /partition must be an integer/],
    [{ partition: -1 }, /partition must be an integer/],
    [{ partition: 2 ** 31 }, /partition must be an integer/],
    [{ partition: null }, /partition must be an integer/],
    [{ offset: '1e3' }, /records\[0\] offset must be an integer/],
    [{ offset: 1.5 }, /offset must be an integer/],
    [{ offset: ' 7' }, /offset must be an integer/],
    [{ offset: '9223372036854775808' }, /offset must be an integer/],
    [{ offset: 2 ** 53 }, /offset must be an integer/]
  ]
  for (const [record, detail] of refused) {
    const res = await push({ 'content-type': 'application/json' }, recordBatch(record))
    t.equal(res.statusCode, 400, JSON.stringify(record))
    t.match(res.json(), { detail }, JSON.stringify(record))
  }
  t.same(await rows(), [])
  t.equal((await push({ 'content-type': 'application/json' }, recordBatch({ partition: '2', offset: '0009223372036854775807' }))).statusCode, 400, 'at most 19 digits')
  t.equal((await push({ 'content-type': 'application/json' }, recordBatch({ partition: '2', offset: '9223372036854775807' }))).statusCode, 202)
  t.equal((await push({ 'content-type': 'application/json' }, recordBatch({ partition: 2, offset: 9223372036854775807n.toString() }))).statusCode, 200,
    'a number given as text or as a number is one record')
  t.same((await rows()).map(r => r.delivery_id), ['platform.sources.event-stream/2/9223372036854775807'])
})

t.test('identity: an org_id that is not an org id, or that disagrees with internal.org_id, is 401; only the listed types are accepted', async t => {
  const status = async (identity: unknown): Promise<LightMyRequestResponse> =>
    injectPastShedding(app, { method: 'GET', url: '/api/cloudoreg/v1/sources', headers: { 'x-rh-identity': b64(identity) } })
  const refused: Array<[string, unknown, RegExp]> = [
    ['letters in org_id, beside a valid internal.org_id', { identity: { org_id: 'abc', internal: { org_id: ORG }, type: 'User' } }, /org_id that is not an org id/],
    ['org_id disagreeing with internal.org_id', { identity: { org_id: ORG, internal: { org_id: '1111111' }, type: 'User' } }, /disagrees with its internal\.org_id/],
    ['a null org_id', { identity: { org_id: null, internal: { org_id: ORG }, type: 'User' } }, /org_id that is not an org id/],
    ['an invalid internal.org_id', { identity: { org_id: ORG, internal: { org_id: 7654321 }, type: 'User' } }, /internal\.org_id that is not an org id/],
    ['an Associate', { identity: { org_id: ORG, type: 'Associate' } }, /type must be one of User, System, ServiceAccount/],
    ['no type', { identity: { org_id: ORG } }, /type must be one of/]
  ]
  for (const [what, identity, detail] of refused) {
    const res = await status(identity)
    t.equal(res.statusCode, 401, what)
    t.match(res.json(), { detail }, what)
  }
  for (const type of ['User', 'System', 'ServiceAccount']) {
    t.equal((await status({ identity: { org_id: ORG, internal: { org_id: ORG }, type } })).statusCode, 200, type)
  }
  t.equal((await status({ identity: { org_id: '', internal: { org_id: ORG }, type: 'System' } })).statusCode, 200,
    'an empty org_id is Go\'s zero value (sources-api\'s generated identities): internal.org_id decides')

  const disagreeing = b64({ identity: { org_id: ORG, internal: { org_id: '1111111' }, type: 'System' } })
  const check = await injectPastShedding(app, { method: 'POST', url: '/internal/api/cloudoreg/v1/availability_status', headers: { 'content-type': 'application/json', 'x-rh-identity': disagreeing }, payload: '{"source_id":"7"}' })
  t.equal(check.statusCode, 401, 'the availability check, on its identity alone')
  const pushed = await push({ 'content-type': 'application/json', event_type: 'Source.destroy', 'x-rh-identity': disagreeing }, '{"id":7}')
  t.equal(pushed.statusCode, 400, 'a push whose only tenant is that identity')
  t.match(pushed.json(), { detail: /disagrees/ })
})
