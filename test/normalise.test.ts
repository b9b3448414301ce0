import t from 'tap'
import { normaliseKafkaRecord, normalisePush, type PushRequest } from '../src/ingress/normalise.js'
import { readFixture } from './helpers/fixtures.js'

const create = readFixture('events/app-auth-create.json')
const expected = { eventType: 'ApplicationAuthentication.create', orgId: '7654321', accountNumber: '1234567', queueKey: 'app:42' }

function native (fixture: any, extra: Record<string, string> = {}): PushRequest {
  return { headers: { 'content-type': 'application/json', ...fixture.kafka_headers, ...extra }, body: Buffer.from(JSON.stringify(fixture.body)) }
}

function ok (req: PushRequest) {
  const r = normalisePush(req, 'token')
  if (!r.ok) throw new Error(`expected ok, got ${r.detail}`)
  return r.events
}

function rejected (req: PushRequest): string {
  const r = normalisePush(req, 'token')
  if (r.ok) throw new Error('expected a rejection')
  return r.detail
}

t.test('sources-native: headers carry the Kafka headers; no delivery id → content hash for 60 s', async t => {
  const [e] = ok(native(create))
  t.match(e, expected)
  t.same(e.body, create.body)
  t.match(e.dedupeKey, /^push-token:hash:[^#]+$/, 'a content hash is content already')
  t.equal(e.dedupeTtlMs, 60_000)
  t.equal(ok(native(create))[0].dedupeKey, e.dedupeKey, 'identical push → same key')
  const other = { ...create, body: { ...create.body, authentication_id: 312 } }
  t.not(ok(native(other))[0].dedupeKey, e.dedupeKey, 'different body → different key')
})

t.test('sources-native with webhook-id: that id is the durable key', async t => {
  const [e] = ok(native(create, { 'webhook-id': 'msg_1' }))
  t.match(e.dedupeKey, /^push-token:webhook:msg_1#[\w-]{22}$/, 'the id, with the content it came with')
  t.equal(e.dedupeTtlMs, null)
})

t.test('CloudEvents binary as Knative sends it, with no Content-Type', async t => {
  const f = readFixture('events/app-auth-create.knative-binary.json')
  const [e] = ok({ headers: f.http_headers, body: Buffer.from(f.body) })
  t.match(e, expected)
  t.equal(e.dedupeKey.slice(0, e.dedupeKey.lastIndexOf('#')), `push-token:ce:${f.http_headers['ce-source']}|partition:0/offset:1234`)
  t.equal(e.deliveryId, 'partition:0/offset:1234')
})

t.test('CloudEvents structured', async t => {
  const f = readFixture('events/app-auth-create.cloudevents-structured.json')
  const [e] = ok({ headers: f.http_headers, body: Buffer.from(JSON.stringify(f.body)) })
  t.match(e, expected)
  t.same(e.body, f.body.data)
  t.match(e.dedupeKey, /^push-token:ce:.*\|partition:0\/offset:1234#/)
})

t.test('CloudEvents batch', async t => {
  const f = readFixture('events/cloudevents-batch.json')
  const events = ok({ headers: f.http_headers, body: Buffer.from(JSON.stringify(f.body)) })
  t.equal(events.length, f.body.length)
  t.match(events[0], expected)
  t.equal(events[1].eventType, 'Application.update')
  t.equal(events[1].queueKey, 'app:42')
})

t.test('record batch with base64 header values', async t => {
  const f = readFixture('events/record-batch.json')
  const events = ok({ headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify(f.body)) })
  t.equal(events.length, 2)
  t.match(events[0], expected)
  t.equal(events[0].dedupeKey.slice(0, events[0].dedupeKey.lastIndexOf('#')), 'push-token:kafka:platform.sources.event-stream/0/1234')
  t.equal(events[1].eventType, 'Application.update')
})

t.test('record values as JSON text or base64 JSON are read too', async t => {
  const f = readFixture('events/record-batch.json')
  const records = [
    { ...f.body.records[0], value: JSON.stringify(f.body.records[0].value) },
    { ...f.body.records[0], offset: 1300, value: Buffer.from(JSON.stringify(f.body.records[0].value)).toString('base64') }
  ]
  const events = ok({ headers: {}, body: Buffer.from(JSON.stringify({ records })) })
  t.same(events[0].body, f.body.records[0].value)
  t.same(events[1].body, f.body.records[0].value)
})

t.test('every fixture event normalises, with the ordering key of DESIGN.md', async t => {
  const keys: Record<string, string | null> = {
    'app-auth-create.json': 'app:42',
    'app-auth-destroy.json': 'app:42',
    'application-create.json': 'app:42',
    'application-destroy.json': 'app:42',
    'application-pause.json': 'app:42',
    'application-unpause.json': 'app:42',
    'application-update.json': 'app:42',
    'authentication-create.json': 'app:42',
    'authentication-destroy.json': 'app:42',
    'authentication-update.json': 'app:42',
    'records-update.json': null,
    'source-destroy.json': 'source:7'
  }
  for (const [file, key] of Object.entries(keys)) {
    const f = readFixture(`events/${file}`)
    const [e] = ok(native(f))
    t.equal(e.eventType, f.event_type, file)
    t.equal(e.queueKey, key, `${file} key`)
  }
})

t.test('org id falls back to x-rh-identity; account number is optional', async t => {
  const headers = { ...create.kafka_headers }
  delete headers['x-rh-sources-org-id']
  delete headers['x-rh-sources-account-number']
  const [e] = ok({ headers, body: Buffer.from(JSON.stringify(create.body)) })
  t.equal(e.orgId, '7654321')
  t.equal(e.accountNumber, '1234567')
  const identity = Buffer.from(JSON.stringify({ identity: { internal: { org_id: '555' } } })).toString('base64')
  const [f] = ok({ headers: { event_type: 'X.y', 'x-rh-identity': identity }, body: Buffer.from('{}') })
  t.equal(f.orgId, '555')
  t.equal(f.accountNumber, null)
})

t.test('requests that can never succeed name what is wrong', async t => {
  t.match(rejected({ headers: { event_type: 'A.b' }, body: Buffer.from('{bad') }), /not valid JSON/)
  t.match(rejected({ headers: { 'x-rh-sources-org-id': '1' }, body: Buffer.from('{}') }), /no event type/)
  t.match(rejected({ headers: { event_type: 'A.b' }, body: Buffer.from('{}') }), /no org id/)
  t.match(rejected({ headers: { event_type: 'A.b', 'x-rh-identity': 'not base64!' }, body: Buffer.from('{}') }), /no org id/)
  t.match(rejected({ headers: { event_type: 'A.b', 'x-rh-sources-org-id': '1' }, body: Buffer.from('[1]') }), /JSON object/)
  t.match(rejected({ headers: { event_type: 'A.b', 'x-rh-sources-org-id': '1' }, body: Buffer.alloc(0) }), /empty/)
  t.match(rejected({ headers: { event_type: 'A.b', 'x-rh-sources-org-id': '1 OR 1=1' }, body: Buffer.from('{}') }), /org id/)
  const f = readFixture('events/record-batch.json')
  const records = [f.body.records[0], { ...f.body.records[1], headers: [{ key: 'event_type', value: '%%%' }] }]
  t.match(rejected({ headers: {}, body: Buffer.from(JSON.stringify({ records })) }), /records\[1\] headers\[0\]\.value is not base64/)
  const noOrg = [f.body.records[0], { ...f.body.records[1], headers: [] }]
  t.match(rejected({ headers: {}, body: Buffer.from(JSON.stringify({ records: noOrg })) }), /records\[1\] has no event type/)
  t.match(rejected({ headers: { 'content-type': 'application/cloudevents-batch+json' }, body: Buffer.from('[]') }), /non-empty array/)
  t.match(rejected({ headers: { event_type: 'A.b', 'x-rh-sources-org-id': '1' }, body: Buffer.from('{"a":' + '['.repeat(5000) + ']'.repeat(5000) + '}') }), /nested more than 64 levels/)
  t.match(rejected({ headers: { 'ce-id': 'x', 'ce-source': 's', 'ce-kafkaheadereventtype': 'A.b', 'ce-kafkaheaderxrhsourcesorgid': '1' }, body: Buffer.from('nope') }), /not valid JSON/)
})

t.test('W3C trace context travels with the event from every format; an invalid one is ignored, not refused', async t => {
  const TP = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'
  const TP2 = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00'
  const b64 = (s: string): string => Buffer.from(s).toString('base64')
  const expectTrace = (e: { trace?: unknown }, traceparent: string, tracestate: string | null = null): void => {
    t.same(e.trace, { traceparent, tracestate })
  }

  // sources-native: Kafka headers are HTTP headers
  expectTrace(ok(native(create, { traceparent: TP, tracestate: 'congo=t61rcWkgMzE' }))[0], TP, 'congo=t61rcWkgMzE')
  t.equal(ok(native(create))[0].trace, null, 'none sent: none here (the inbox starts a trace)')
  for (const bad of ['00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331', 'ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    '00-00000000000000000000000000000000-b7ad6b7169203331-01', '00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01', 'x'.repeat(500)]) {
    t.equal(ok(native(create, { traceparent: bad }))[0].trace, null, `ignored: ${bad.slice(0, 60)}`)
  }

  // CloudEvents binary: the distributed-tracing extension (ce-traceparent) first, then the Kafka header, then the request's
  const bin = readFixture('events/app-auth-create.knative-binary.json')
  const binary = (headers: Record<string, string>): PushRequest => ({ headers: { ...bin.http_headers, ...headers }, body: Buffer.from(bin.body) })
  expectTrace(ok(binary({ 'ce-traceparent': TP, 'ce-tracestate': 'a=1', 'ce-kafkaheadertraceparent': TP2, traceparent: TP2 }))[0], TP, 'a=1')
  expectTrace(ok(binary({ 'ce-kafkaheadertraceparent': TP2, traceparent: TP }))[0], TP2)
  expectTrace(ok(binary({ traceparent: TP }))[0], TP)

  // CloudEvents structured: the traceparent attribute, then the request's
  const st = readFixture('events/app-auth-create.cloudevents-structured.json')
  const structured = (extra: Record<string, unknown>, headers: Record<string, string> = {}): PushRequest =>
    ({ headers: { ...st.http_headers, ...headers }, body: Buffer.from(JSON.stringify({ ...st.body, ...extra })) })
  expectTrace(ok(structured({ traceparent: TP, tracestate: 'b=2' }, { traceparent: TP2 }))[0], TP, 'b=2')
  expectTrace(ok(structured({}, { traceparent: TP2 }))[0], TP2)

  // a CloudEvents batch: each event its own
  const cb = readFixture('events/cloudevents-batch.json')
  const batch = ok({ headers: cb.http_headers, body: Buffer.from(JSON.stringify([{ ...cb.body[0], traceparent: TP }, { ...cb.body[1], traceparent: TP2 }])) })
  expectTrace(batch[0], TP)
  expectTrace(batch[1], TP2)

  // record batch: a traceparent Kafka header per record (base64, as a Strimzi bridge hands it over)
  const rb = readFixture('events/record-batch.json')
  const records = rb.body.records.map((r: any, i: number) => i === 0 ? { ...r, headers: [...r.headers, { key: 'traceparent', value: b64(TP) }, { key: 'tracestate', value: b64('c=3') }] } : r)
  const fromRecords = ok({ headers: { 'content-type': 'application/json', traceparent: TP2 }, body: Buffer.from(JSON.stringify({ records })) })
  expectTrace(fromRecords[0], TP, 'c=3')
  t.equal(fromRecords[1].trace, null, 'a record without one does not take the request\'s')

  // direct Kafka mode: the record's traceparent header as kafkajs hands it over (bytes)
  const consumed = normaliseKafkaRecord({
    topic: 'platform.sources.event-stream',
    partition: 0,
    offset: '7',
    value: Buffer.from(JSON.stringify(create.body)),
    headers: { ...create.kafka_headers, traceparent: Buffer.from(TP) }
  })
  t.ok(consumed.ok)
  if (consumed.ok) expectTrace(consumed.event, TP)
})

t.test('what the store would refuse is named where it is, in every format', async t => {
  const headers = { event_type: 'Records.update', 'x-rh-sources-org-id': '1' }
  t.match(rejected({ headers, body: Buffer.from('"\\u0000"') }), /^body contains a NUL/, 'a top-level string')
  t.match(rejected({ headers, body: Buffer.from('{"a":{"b":[{"c\\u0000d":1}]}}') }), /^a key in body\.a\.b\[0\] contains a NUL/)
  t.match(rejected({ headers, body: Buffer.from(`{"${'k'.repeat(100)}":["\\ud800"]}`) }), new RegExp(`^body\\["${'k'.repeat(40)}"\\]\\[0\\] contains a lone`), 'long keys are cut in the path')
  t.equal(normalisePush({ headers, body: Buffer.from('{"a":[1,true,null,"\\ud83d\\ude00",{"b":[]}]}') }, 'token').ok, true, 'everything storable passes')
  const ce = { specversion: '1.0', type: 't', source: 's', id: 'x', kafkaheadereventtype: 'Records.update', kafkaheaderxrhsourcesorgid: '1', data: {} }
  t.match(rejected({ headers: { 'content-type': 'application/cloudevents+json' }, body: Buffer.from(JSON.stringify({ ...ce, data: '{"a":"\\u0000"}' })) }), /^data\.a contains a NUL/)
  t.match(rejected({ headers: { 'content-type': 'application/cloudevents+json' }, body: Buffer.from(JSON.stringify({ ...ce, data: undefined, data_base64: Buffer.from('{"a":"\\udc00"}').toString('base64') })) }),
    /^data_base64\.a contains a lone/)
  t.match(rejected({ headers: { 'content-type': 'application/cloudevents-batch+json' }, body: Buffer.from(JSON.stringify([ce, { ...ce, id: 'é'.repeat(257) }])) }),
    /^batch\[1\] id is longer than 512 bytes/, 'bytes, not characters')
})

t.test('tenant numbers: the org id from the header or the identity; an account number that is not one is dropped with a note', async t => {
  const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64')
  const push = (h: Record<string, string>): ReturnType<typeof normalisePush> => normalisePush({ headers: { event_type: 'Records.update', ...h }, body: Buffer.from('{}') }, 'token')
  t.match(push({ 'x-rh-sources-org-id': '1', 'x-rh-sources-account-number': 'x' }), { ok: true, events: [{ orgId: '1', accountNumber: null }], notes: [/x-rh-sources-account-number is not an account number/] })
  t.match(push({ 'x-rh-sources-org-id': '1', 'x-rh-sources-account-number': 'x', 'x-rh-identity': b64({ identity: { org_id: '1', account_number: '22' } }) }),
    { ok: true, events: [{ accountNumber: '22' }] }, 'the identity\'s account number instead')
  t.match(push({ 'x-rh-sources-org-id': '', 'x-rh-identity': b64({ identity: { internal: { org_id: '3' }, account_number: 'y' } }) }),
    { ok: true, events: [{ orgId: '3', accountNumber: null }], notes: [/account_number in x-rh-identity/] })
  t.match(push({ 'x-rh-identity': b64({ identity: { org_id: '3', internal: { org_id: '4' } } }) }), { ok: false, detail: /no org id: .*disagrees/ })
  t.match(push({}), { ok: false, detail: /has no org id \(x-rh-sources-org-id header/ })
})
