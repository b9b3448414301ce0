import { randomBytes } from 'node:crypto'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t from 'tap'
import type { IncomingEvent } from '../src/events/event.js'
import { injectPastShedding, ORG, startBareApp } from './helpers/stack.js'

// Poison: input that PostgreSQL refuses although JSON.parse and HTTP accept it (NUL, lone surrogates,
// dedupe keys past the btree limit), and input wide enough to break a check, never fails or stalls
// anyone else's events. The direct Kafka half of this is in kafka-consume.test.ts.

let app: FastifyInstance
const logs: string[] = []

t.before(async () => {
  app = await startBareApp(t, { LOG_LEVEL: 'info' }, logs)
})
t.beforeEach(async () => {
  await app.store.pool.query('truncate inbox, delivery_keys')
})

const native = { 'content-type': 'application/json', event_type: 'ApplicationAuthentication.create', 'x-rh-sources-org-id': ORG }

async function push (headers: Record<string, string>, payload: string): Promise<LightMyRequestResponse> {
  return injectPastShedding(app, { method: 'POST', url: '/internal/v1/events', headers, payload })
}

async function count (table = 'inbox'): Promise<number> {
  return (await app.store.pool.query(`select count(*)::int as n from ${table}`)).rows[0].n
}

t.test('one push with a NUL among 30 concurrent pushes: 29 stored (202), it alone refused (400 naming the field)', async t => {
  const bodies = Array.from({ length: 30 }, (_, i) => i === 13
    ? '{"application_id":14,"authentication_id":311,"name":"a\\u0000b"}'
    : JSON.stringify({ application_id: i + 1, authentication_id: 311 }))
  const answers = await Promise.all(bodies.map((body, i) => push({ ...native, 'webhook-id': `poison-${i}` }, body)))
  const codes = answers.map(a => a.statusCode)
  t.same(codes.filter((_, i) => i !== 13), Array(29).fill(202), 'the 29 valid pushes are stored')
  t.equal(codes[13], 400)
  t.match(answers[13].headers['content-type'], /application\/problem\+json/)
  t.match(answers[13].json(), { status: 400, detail: /body\.name contains a NUL character/ })
  t.equal(await count(), 29)
  t.equal(await count('delivery_keys'), 29, 'the refused push left no delivery key behind')
  t.comment(`30 concurrent pushes, one with a NUL: ${codes.filter(c => c === 202).length} × 202, ${codes.filter(c => c === 400).length} × 400`)
})

t.test('what PostgreSQL would refuse is refused at the edge: 400 naming the field, nothing stored', async t => {
  // Random, so that PostgreSQL cannot compress it below the btree limit.
  const long = randomBytes(1500).toString('hex')
  const ce = (extra: Record<string, unknown>): string => JSON.stringify({
    specversion: '1.0', id: 'e-1', source: 's', type: 't', kafkaheadereventtype: 'Application.pause', kafkaheaderxrhsourcesorgid: ORG, data: { id: 42 }, ...extra
  })
  const record = (extra: Record<string, unknown>): string => JSON.stringify({
    records: [{
      topic: 'platform.sources.event-stream',
      partition: 0,
      offset: 1,
      value: { id: 42 },
      headers: [{ key: 'event_type', value: Buffer.from('Application.pause').toString('base64') }, { key: 'x-rh-sources-org-id', value: Buffer.from(ORG).toString('base64') }],
      ...extra
    }]
  })
  const cases: Array<[string, Record<string, string>, string, RegExp]> = [
    ['NUL in a nested string', native, '{"application_id":1,"authentication_id":2,"meta":{"tags":["ok","x\\u0000"]}}', /body\.meta\.tags\[1\] contains a NUL/],
    ['NUL in a key', native, '{"application_id":1,"authentication_id":2,"a\\u0000":1}', /a key in body contains a NUL/],
    ['a lone high surrogate', native, '{"application_id":1,"authentication_id":2,"name":"\\ud800"}', /body\.name contains a lone UTF-16 surrogate/],
    ['a lone low surrogate', native, '{"application_id":1,"authentication_id":2,"odd key":"x\\udc00y"}', /body\["odd key"\] contains a lone/],
    ['a webhook-id past the btree limit', { ...native, 'webhook-id': long }, '{"application_id":1}', /webhook-id is longer than 512 bytes/],
    ['a CloudEvents binary id past the limit', { 'ce-id': long, 'ce-source': 's', 'ce-kafkaheadereventtype': 'A.b', 'ce-kafkaheaderxrhsourcesorgid': ORG }, '{}', /ce-id is longer than 512 bytes/],
    ['a CloudEvents source past the limit', { 'content-type': 'application/cloudevents+json' }, ce({ source: long }), /^source is longer than 512 bytes/],
    ['a NUL in a CloudEvents id', { 'content-type': 'application/cloudevents+json' }, ce({ id: 'a\u0000' }), /body\.id contains a NUL/],
    ['a NUL in a record topic', { 'content-type': 'application/json' }, record({ topic: 't\u0000' }), /body\.records\[0\]\.topic contains a NUL/],
    ['a record topic Kafka would refuse', { 'content-type': 'application/json' }, record({ topic: long }), /records\[0\] topic must be a Kafka topic name/],
    ['a NUL inside a record value given as JSON text', { 'content-type': 'application/json' }, record({ value: '{"id":42,"n":"\\u0000"}' }), /records\[0\] value\.n contains a NUL/],
    ['a surrogate inside a base64 record value', { 'content-type': 'application/json' }, record({ value: Buffer.from('{"id":42,"n":"\\udfff"}').toString('base64') }), /records\[0\] value\.n contains a lone/]
  ]
  for (const [what, headers, body, detail] of cases) {
    const res = await push(headers, body)
    t.equal(res.statusCode, 400, what)
    t.match(res.json(), { status: 400, detail }, `${what}: the answer names the field`)
  }
  t.equal(await count(), 0, 'nothing stored')
  t.equal((await push({ ...native, 'webhook-id': 'x'.repeat(512) }, '{"name":"\\ud83d\\ude00 a surrogate pair is fine"}')).statusCode, 202, 'what can be stored still is')
})

t.test('the depth and size check cannot throw on any input up to the body limit', async t => {
  const limit = 4 * 1024 * 1024
  const shapes: Array<[string, string]> = [
    ['125,000 numbers', `{"wide":[${Array(125_000).fill(0).join(',')}]}`],
    ['a 4 MiB array of numbers', `{"wide":[${Array(Math.floor((limit - 20) / 2)).fill(0).join(',')}]}`],
    ['a 4 MiB array of empty arrays', `{"wide":[${Array(Math.floor((limit - 20) / 3)).fill('[]').join(',')}]}`],
    ['a 4 MiB object of keys', `{${Array.from({ length: 200_000 }, (_, i) => `"k${i}":1`).join(',')}}`],
    ['wide at the deepest level allowed', `{"a":${'['.repeat(63)}${Array(500_000).fill(1).join(',')}${']'.repeat(63)}}`],
    ['4 MiB of opening brackets', '['.repeat(limit)]
  ]
  for (const [what, body] of shapes) {
    t.ok(body.length <= limit, `${what}: ${body.length} bytes`)
    const res = await push({ ...native, 'webhook-id': `wide-${what}` }, body)
    t.ok([202, 400].includes(res.statusCode), `${what}: ${res.statusCode} ${res.statusCode === 400 ? res.json().detail : ''}`)
  }
  t.equal(await count(), 5, 'every shape that is storable was stored')
})

const event = (key: string, body: Record<string, unknown> = { key }): IncomingEvent => ({
  eventType: 'X.y', orgId: ORG, accountNumber: null, body, queueKey: null, dedupeKey: key, dedupeTtlMs: null, deliveryId: null
})

t.test('an append the database refuses fails alone: the others of its group commit are stored, in order, deduplicated', async t => {
  const { inbox } = app.store
  // The first append writes at once; the next five queue behind it and share one statement.
  const results = await Promise.allSettled([
    inbox.append([event('first')]),
    inbox.append([event('a')]),
    inbox.append([event('poison', { s: 'a\u0000b' })]),
    inbox.append([event('b'), event('c')]),
    inbox.append([event('a')]),
    inbox.append([event('d', { s: '\ud800' })])
  ])
  t.same(results.map(r => r.status), ['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'rejected'])
  for (const i of [2, 5]) {
    const { reason } = results[i] as PromiseRejectedResult
    // UnstorableError: refused as data (the caller must not retry), not a store failure.
    t.match(reason, { name: 'UnstorableError', sqlState: /^22/, message: /the database refuses this data/ }, `append ${i}: ${reason.message}`)
  }
  t.same((results[4] as PromiseFulfilledResult<unknown>).value, [null], 'a redelivery in the same group is still a duplicate')
  const { rows } = await app.store.pool.query('select dedupe_key from inbox order by id')
  t.same(rows.map(r => r.dedupe_key), ['first', 'a', 'b', 'c'])
})

t.test('data the database refuses although the edge let it through: that push alone gets 400, never a 503 to retry for ever', async t => {
  // Stands for any refusal nobody foresaw: a constraint PostgreSQL enforces on the stored row.
  await app.store.pool.query("alter table inbox add constraint refused_by_test check (not (body ? 'refused_by_test'))")
  t.teardown(async () => { await app.store.pool.query('alter table inbox drop constraint refused_by_test') })
  const answers = await Promise.all(Array.from({ length: 10 }, (_, i) =>
    push({ ...native, 'webhook-id': `refused-${i}` }, JSON.stringify({ application_id: i + 1, ...(i === 4 ? { refused_by_test: true } : {}) }))))
  t.same(answers.map(a => a.statusCode), [202, 202, 202, 202, 400, 202, 202, 202, 202, 202])
  t.match(answers[4].json(), { status: 400, detail: /cannot be stored: the database refuses this data \(SQLSTATE 23514/ })
  t.equal(await count(), 9)
  t.ok(logs.some(l => l.includes('pushed events refused by the database')), 'logged')
  t.notOk(logs.some(l => l.includes('refused_by_test":true')), 'the log does not quote the row')
})
