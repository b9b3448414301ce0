import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { readFixture } from './helpers/fixtures.js'
import { startBareApp } from './helpers/stack.js'

// Ingress alone: no upstreams configured, so events are stored and wait; requests go through fastify.inject.
const TOKEN = 'push-token-for-tests-0123456789abcdef'
let app: FastifyInstance

t.before(async () => {
  app = await startBareApp(t, { PUSH_TOKEN: TOKEN })
})
t.beforeEach(async () => {
  await app.store.pool.query('truncate inbox, delivery_keys')
})

const auth = { authorization: `Bearer ${TOKEN}` }

async function stored (): Promise<Array<{ event_type: string, org_id: string, account_number: string | null, queue_key: string | null, body: unknown, delivery_id: string | null }>> {
  const { rows } = await app.store.pool.query('select event_type, org_id, account_number, queue_key, body, delivery_id from inbox order by id')
  return rows
}

async function inject (headers: Record<string, string>, payload: string | Buffer): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url: '/internal/v1/events', headers, payload })
}

const create = readFixture('events/app-auth-create.json')
const expectedRow = { event_type: 'ApplicationAuthentication.create', org_id: '7654321', account_number: '1234567', queue_key: 'app:42', body: create.body }

t.test('sources-native push', async t => {
  const res = await inject({ ...auth, 'content-type': 'application/json', ...create.kafka_headers }, JSON.stringify(create.body))
  t.equal(res.statusCode, 202)
  t.equal(res.body, '')
  t.match(await stored(), [expectedRow])
})

t.test('CloudEvents binary with no Content-Type (Knative)', async t => {
  const f = readFixture('events/app-auth-create.knative-binary.json')
  t.notOk('content-type' in f.http_headers)
  const res = await inject({ ...auth, ...f.http_headers }, f.body)
  t.equal(res.statusCode, 202)
  t.match(await stored(), [{ ...expectedRow, delivery_id: 'partition:0/offset:1234' }])
  t.equal((await inject({ ...auth, ...f.http_headers }, f.body)).statusCode, 200, 'redelivery')
  t.equal((await stored()).length, 1)
})

t.test('CloudEvents structured and batch', async t => {
  const one = readFixture('events/app-auth-create.cloudevents-structured.json')
  t.equal((await inject({ ...auth, ...one.http_headers }, JSON.stringify(one.body))).statusCode, 202)
  const batch = readFixture('events/cloudevents-batch.json')
  const res = await inject({ ...auth, ...batch.http_headers }, JSON.stringify(batch.body))
  t.equal(res.statusCode, 202, 'the second event of the batch is new')
  t.equal((await inject({ ...auth, ...batch.http_headers }, JSON.stringify(batch.body))).statusCode, 200, 'all duplicates → 200')
  t.match(await stored(), [expectedRow, { event_type: 'Application.update', queue_key: 'app:42' }])
})

t.test('record batch', async t => {
  const f = readFixture('events/record-batch.json')
  t.equal((await inject({ ...auth, 'content-type': 'application/json' }, JSON.stringify(f.body))).statusCode, 202)
  t.match(await stored(), [{ ...expectedRow, delivery_id: 'platform.sources.event-stream/0/1234' }, { event_type: 'Application.update' }])
})

t.test('a batch with one invalid record stores nothing and names the record', async t => {
  const f = readFixture('events/record-batch.json')
  const records = [f.body.records[0], { ...f.body.records[1], value: 'not json, not base64 json!' }]
  const res = await inject({ ...auth, 'content-type': 'application/json' }, JSON.stringify({ records }))
  t.equal(res.statusCode, 400)
  t.match(res.headers['content-type'], /application\/problem\+json/)
  t.match(res.json(), { status: 400, detail: /records\[1\] value/ })
  t.same(await stored(), [])
})

t.test('requests that can never succeed: 400 problem+json, nothing stored', async t => {
  const bad: Array<[Record<string, string>, string, RegExp]> = [
    [{ 'content-type': 'application/json', event_type: 'A.b', 'x-rh-sources-org-id': '1' }, '{"a":', /not valid JSON/],
    [{ 'content-type': 'application/json', 'x-rh-sources-org-id': '1' }, '{}', /no event type/],
    [{ 'content-type': 'application/json', event_type: 'A.b' }, '{}', /no org id/],
    [{ 'content-type': 'application/cloudevents+json' }, '{"id":"1","source":"s","data":{}}', /no event type/]
  ]
  for (const [headers, body, detail] of bad) {
    const res = await inject({ ...auth, ...headers }, body)
    t.equal(res.statusCode, 400)
    t.match(res.json(), { type: 'about:blank', title: 'Bad Request', status: 400, detail })
  }
  t.same(await stored(), [])
})

t.test('PUSH_TOKEN: bearer or dapr-api-token, else 401', async t => {
  const headers = { 'content-type': 'application/json', ...create.kafka_headers }
  const body = JSON.stringify(create.body)
  t.equal((await inject(headers, body)).statusCode, 401)
  t.equal((await inject({ ...headers, authorization: 'Bearer wrong-token-xxxxxxx' }, body)).statusCode, 401)
  t.equal((await inject({ ...headers, 'dapr-api-token': 'wrong' }, body)).statusCode, 401)
  t.same(await stored(), [], 'nothing stored for a refused push')
  t.equal((await inject({ ...headers, 'dapr-api-token': TOKEN }, body)).statusCode, 202)
})

t.test('oversized bodies get 413 problem+json', async t => {
  const res = await inject({ ...auth, 'content-type': 'application/json', event_type: 'A.b', 'x-rh-sources-org-id': '1' },
    JSON.stringify({ blob: 'x'.repeat(5 * 1024 * 1024) }))
  t.equal(res.statusCode, 413)
  t.match(res.headers['content-type'], /application\/problem\+json/)
  t.same(await stored(), [])
})

t.test('concurrent pushes share commits and each gets its own answer', async t => {
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) =>
    inject({ ...auth, 'content-type': 'application/json', ...create.kafka_headers, 'webhook-id': `msg-${i % 150}` },
      JSON.stringify({ ...create.body, application_id: i % 150 }))))
  const codes = results.map(r => r.statusCode)
  t.equal(codes.filter(c => c === 202).length, 150)
  t.equal(codes.filter(c => c === 200).length, 50)
  const rows = await stored()
  t.equal(rows.length, 150)
  t.equal(new Set(rows.map(r => r.delivery_id)).size, 150)
})

t.test('unknown routes and methods answer problem+json', async t => {
  const res = await app.inject({ method: 'GET', url: '/nope' })
  t.equal(res.statusCode, 404)
  t.match(res.json(), { status: 404, detail: /no route GET \/nope/ })
})

t.test('a store failure answers 503 with Retry-After, and nothing is half-written', async t => {
  await app.store.pool.query('alter table inbox rename to inbox_away')
  let res
  try {
    res = await inject({ ...auth, 'content-type': 'application/json', ...create.kafka_headers, 'webhook-id': 'msg-store-down' }, JSON.stringify(create.body))
  } finally {
    await app.store.pool.query('alter table inbox_away rename to inbox')
  }
  t.equal(res.statusCode, 503)
  t.equal(res.headers['retry-after'], '5')
  t.match(res.json(), { status: 503, detail: /event store is unavailable/ })
  const { rows } = await app.store.pool.query('select count(*)::int as n from delivery_keys')
  t.equal(rows[0].n, 0, 'the delivery key was not kept without its event')
  const again = await inject({ ...auth, 'content-type': 'application/json', ...create.kafka_headers, 'webhook-id': 'msg-store-down' }, JSON.stringify(create.body))
  t.equal(again.statusCode, 202, 'the retried push is stored')
})
