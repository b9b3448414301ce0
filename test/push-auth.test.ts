import { createHmac } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { assertProductionReady, loadConfig, pushRouteServed } from '../src/config.js'
import { normaliseKafkaRecord } from '../src/ingress/normalise.js'
import { verifyWebhookSignature } from '../src/plugins/app/auth.js'
import { readFixture } from './helpers/fixtures.js'
import { createRecord, eventually, freePort, identities, ORG, startBareApp, TEST_SHEDDING } from './helpers/stack.js'

const signed = readFixture('events/app-auth-create.signed-standard-webhooks.json')
const SECRET: string = signed.secret
const fixtureTime = Number(signed.http_headers['webhook-timestamp']) * 1000

function sign (id: string, timestamp: number, body: string, secret = SECRET): string {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64')
  return 'v1,' + createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')
}

t.test('Standard Webhooks verification, with the fixture and its own clock', async t => {
  const body = Buffer.from(signed.raw_body)
  t.ok(verifyWebhookSignature(signed.http_headers, body, SECRET, fixtureTime), 'the fixture verifies at its own time')
  t.ok(verifyWebhookSignature(signed.http_headers, body, SECRET, fixtureTime + 4 * 60_000), 'within five minutes')
  t.notOk(verifyWebhookSignature(signed.http_headers, body, SECRET, fixtureTime + 6 * 60_000), 'too old')
  t.notOk(verifyWebhookSignature(signed.http_headers, body, SECRET, fixtureTime - 6 * 60_000), 'too far ahead')
  t.notOk(verifyWebhookSignature(signed.http_headers, body, SECRET), 'rejected at today\'s date')
  t.notOk(verifyWebhookSignature(signed.http_headers, Buffer.from(signed.raw_body + ' '), SECRET, fixtureTime), 'a changed body')
  t.notOk(verifyWebhookSignature(signed.http_headers, body, 'whsec_' + Buffer.from('another secret, 32 bytes long!!!').toString('base64'), fixtureTime), 'another secret')
  const several = { ...signed.http_headers, 'webhook-signature': `v1,${Buffer.alloc(32).toString('base64')} v2,xyz ${signed.http_headers['webhook-signature']}` }
  t.ok(verifyWebhookSignature(several, body, SECRET, fixtureTime), 'one valid signature among several')
  t.notOk(verifyWebhookSignature({ ...signed.http_headers, 'webhook-signature': 'v1,bm9wZQ==' }, body, SECRET, fixtureTime), 'a short signature')
  t.notOk(verifyWebhookSignature({ ...signed.http_headers, 'webhook-timestamp': 'soon' }, body, SECRET, fixtureTime), 'a bad timestamp')
})

const PUSH_TOKEN = 'push-token-abcdef-0123456789abcdef'
const INTERNAL_TOKEN = 'internal-token-0123456789abcdefgh'
const structured = readFixture('events/app-auth-create.cloudevents-structured.json')
const binary = readFixture('events/app-auth-create.knative-binary.json')

/** Headers of a push signed now with the test secret. */
function signedHeaders (id: string, body: string, secret = SECRET): Record<string, string> {
  const now = Math.floor(Date.now() / 1000)
  return { 'webhook-id': id, 'webhook-timestamp': String(now), 'webhook-signature': sign(id, now, body, secret) }
}

// One app for the route tests (each start costs an embedded PostgreSQL); every test starts from an empty inbox.
let app: FastifyInstance
t.before(async () => { app = await startBareApp(t, { PUSH_WEBHOOK_SECRET: SECRET, PUSH_TOKEN, INTERNAL_TOKEN }) })
t.beforeEach(async () => { await app.store.pool.query('truncate inbox, delivery_keys') })

t.test('the push route takes a token or a fresh signature over a body that carries the event\'s meaning', async t => {
  const headers = { ...signed.http_headers }
  delete headers['webhook-signature']
  const now = Math.floor(Date.now() / 1000)
  const post = (h: Record<string, string>, body = signed.raw_body): Promise<LightMyRequestResponse> =>
    app.inject({ method: 'POST', url: '/internal/v1/events', headers: h, payload: body })

  const structuredBody = JSON.stringify(structured.body)
  t.equal((await post({ ...structured.http_headers, ...signedHeaders('msg_2nGd0Yv0vDq7yQkq', structuredBody) }, structuredBody)).statusCode, 202)
  t.equal((await post({ ...signed.http_headers })).statusCode, 401, 'the fixture itself is too old today')
  t.equal((await post({ ...headers, 'webhook-id': 'msg_x', 'webhook-timestamp': String(now), 'webhook-signature': sign('msg_other', now, signed.raw_body) })).statusCode, 401, 'signed for another id')
  const native = await post({ ...headers, 'webhook-timestamp': String(now), 'webhook-signature': sign('msg_2nGd0Yv0vDq7yQkq', now, signed.raw_body) })
  t.equal(native.statusCode, 400, 'a signed sources-native push: its event type and tenant are headers, which the signature does not cover')
  t.match(native.json(), { detail: /signed push must carry its event type, tenant and delivery id in the signed body/ })
  t.equal((await post({ ...headers, 'webhook-id': 'msg_y', authorization: `Bearer ${PUSH_TOKEN}` })).statusCode, 202, 'with the token, headers are trusted')
  const { rows } = await app.store.pool.query('select delivery_id from inbox order by id')
  t.same(rows.map(r => r.delivery_id), ['partition:0/offset:1234', 'msg_y'])
})

t.test('a captured signature replayed with changed headers changes nothing', async t => {
  const post = (h: Record<string, string>, body: string): Promise<LightMyRequestResponse> =>
    app.inject({ method: 'POST', url: '/internal/v1/events', headers: h, payload: body })
  const stored = async (): Promise<string[]> => (await app.store.pool.query('select event_type from inbox order by id')).rows.map(r => r.event_type)

  // CloudEvents binary: the event type, tenant and delivery id are headers; the signature covers the body alone.
  const capture = { ...binary.http_headers, 'ce-kafkaheadereventtype': 'Application.update', ...signedHeaders('msg_binary', binary.body) }
  t.equal((await post(capture, binary.body)).statusCode, 400, 'refused as signed')
  for (const [i, type] of ['Application.pause', 'Application.destroy', 'ApplicationAuthentication.destroy'].entries()) {
    const replay = await post({ ...capture, 'ce-id': `partition:0/offset:${2000 + i}`, 'ce-kafkaheadereventtype': type }, binary.body)
    t.equal(replay.statusCode, 400, `replayed as ${type}`)
  }
  t.same(await stored(), [], 'nothing stored')

  // CloudEvents structured: everything that decides the event is in the signed body.
  const body = JSON.stringify(structured.body)
  const first = { ...structured.http_headers, ...signedHeaders('msg_structured', body) }
  t.equal((await post(first, body)).statusCode, 202)
  for (const type of ['Application.pause', 'Application.destroy']) {
    const replay = await post({ ...first, 'ce-id': 'partition:0/offset:3000', 'ce-kafkaheadereventtype': type, event_type: type }, body)
    t.equal(replay.statusCode, 200, `the webhook-id is taken once: replayed with ${type} headers, nothing stored`)
  }
  t.same(await stored(), ['ApplicationAuthentication.create'])
  const forged = JSON.stringify({ ...structured.body, kafkaheadereventtype: 'Application.pause' })
  t.equal((await post(first, forged)).statusCode, 401, 'the same webhook-id over another body does not verify')
  t.same(await stored(), ['ApplicationAuthentication.create'])
})

t.test('dedupe keys belong to the channel that produced them, and to the content they came with', async t => {
  const auth = { authorization: `Bearer ${PUSH_TOKEN}` }
  const post = (h: Record<string, string>, body: string): Promise<LightMyRequestResponse> =>
    app.inject({ method: 'POST', url: '/internal/v1/events', headers: { ...auth, ...h }, payload: body })

  // A pushed record batch naming the consumer's next record does not occupy that record's key.
  const record = createRecord(4242, 42, 311)
  const forgedRecord = { ...record, value: { id: 42 }, headers: [{ key: 'event_type', value: Buffer.from('Application.pause').toString('base64') }, (record.headers as any[])[1]] }
  t.equal((await post({ 'content-type': 'application/json' }, JSON.stringify({ records: [forgedRecord] }))).statusCode, 202)
  const consumed = normaliseKafkaRecord({
    topic: record.topic as string,
    partition: 0,
    offset: '4242',
    value: Buffer.from(JSON.stringify(record.value)),
    headers: { event_type: 'ApplicationAuthentication.create', 'x-rh-sources-org-id': ORG }
  })
  if (!consumed.ok) throw new Error(consumed.detail)
  const [id] = await app.store.inbox.append([consumed.event])
  t.type(id, 'number', 'the consumed record is stored beside the pushed one')
  t.same(await app.store.inbox.append([consumed.event]), [null], 'and read again, it is a duplicate')

  // A push naming a future delivery's id cannot make that delivery a duplicate.
  const fake = await post({ ...binary.http_headers, 'ce-id': 'partition:0/offset:9999', 'ce-kafkaheadereventtype': 'Application.pause' }, '{"id":42}')
  t.equal(fake.statusCode, 202)
  const real = await post({ ...binary.http_headers, 'ce-id': 'partition:0/offset:9999' }, binary.body)
  t.equal(real.statusCode, 202, 'the real delivery is stored')
  t.equal((await post({ ...binary.http_headers, 'ce-id': 'partition:0/offset:9999' }, binary.body)).statusCode, 200, 'and its redelivery is a duplicate')
  const { rows } = await app.store.pool.query('select event_type from inbox order by id')
  t.same(rows.map(r => r.event_type), ['Application.pause', 'ApplicationAuthentication.create', 'Application.pause', 'ApplicationAuthentication.create'])
})

t.test('with KAFKA_CONSUME and no push credential the push route is off; without INTERNAL_TOKEN the operator routes are', async t => {
  const consumer = await startBareApp(t, { KAFKA_CONSUME: 'true', KAFKA_BROKERS: '127.0.0.1:1' })
  const push = await consumer.inject({ method: 'POST', url: '/internal/v1/events', headers: { 'content-type': 'application/json', ...readFixture('events/app-auth-create.json').kafka_headers }, payload: '{"application_id":1}' })
  t.equal(push.statusCode, 404)
  const kafka = { KAFKA_CONSUME: 'true', KAFKA_BROKERS: 'k:9092' }
  t.notOk(pushRouteServed(loadConfig({ ...kafka, PUSH_AUTH: 'none' })), 'PUSH_AUTH=none is no bridge beside the consumer')
  t.ok(pushRouteServed(loadConfig({ ...kafka, PUSH_TOKEN })), 'a configured bridge credential keeps it')
  t.ok(pushRouteServed(loadConfig({ PUSH_AUTH: 'none' })), 'push mode')

  const res = await consumer.inject({ method: 'GET', url: '/internal/v1/dead-letters', headers: { authorization: `Bearer ${PUSH_TOKEN}` } })
  t.equal(res.statusCode, 401)
  t.match(res.json(), { detail: /closed until INTERNAL_TOKEN is configured/ })
})

t.test('secrets and tokens must be real secrets', async t => {
  const bad: Array<[Record<string, string>, RegExp]> = [
    [{ PUSH_WEBHOOK_SECRET: 'whsec_' + '='.repeat(16) }, /PUSH_WEBHOOK_SECRET/],
    [{ PUSH_WEBHOOK_SECRET: 'whsec_' + Buffer.alloc(16, 7).toString('base64') }, /at least 24 bytes/],
    [{ PUSH_WEBHOOK_SECRET: SECRET + '=' }, /canonical base64/],
    [{ PUSH_WEBHOOK_SECRET: 'whsec_' + Buffer.alloc(25).toString('base64').replace(/A==$/, 'B==') }, /canonical base64/],
    [{ PUSH_TOKEN: 'x'.repeat(31) }, /PUSH_TOKEN/],
    [{ INTERNAL_TOKEN: 'x'.repeat(31) }, /INTERNAL_TOKEN/]
  ]
  for (const [env, message] of bad) t.throws(() => loadConfig(env), { code: 'CLOUDOREG_CONFIG', message }, JSON.stringify(env))
  t.doesNotThrow(() => loadConfig({ PUSH_WEBHOOK_SECRET: SECRET, PUSH_TOKEN: 'x'.repeat(32), INTERNAL_TOKEN: 'y'.repeat(32) }))
})

t.test('operator routes take INTERNAL_TOKEN only', async t => {
  const get = async (token: string): Promise<number> =>
    (await app.inject({ method: 'GET', url: '/internal/v1/dead-letters', headers: { authorization: `Bearer ${token}` } })).statusCode
  t.equal(await get(INTERNAL_TOKEN), 200)
  t.equal(await get(PUSH_TOKEN), 401, 'the push token is not an operator\'s')
  t.equal((await app.inject({ method: 'GET', url: '/internal/v1/dead-letters', headers: { 'dapr-api-token': PUSH_TOKEN } })).statusCode, 401)
})

t.test('/readyz says the database is unavailable, not what the driver said', async t => {
  // A second app on a database of the first one's server, which the first then closes to connections.
  const db = 'readyz_probe'
  await app.store.pool.query(`create database ${db}`)
  const url = new URL((app.store.pool.options as { connectionString: string }).connectionString)
  url.pathname = `/${db}`
  const probed = await startBareApp(t, { DATABASE_URL: url.toString() })
  await app.store.pool.query(`alter database ${db} with allow_connections false`)
  await app.store.pool.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1', [db])
  const res = await eventually(async () => {
    const r = await probed.inject({ method: 'GET', url: '/readyz' })
    return r.statusCode === 503 ? r : undefined
  }, 10_000, '/readyz to fail')
  t.equal(res.json().detail, 'database unavailable')
  t.notMatch(res.body, db, 'nothing of the driver\'s message')
  await app.store.pool.query(`alter database ${db} with allow_connections true`)
})

t.test('push authentication in production: required unless PUSH_AUTH=none', async t => {
  const base = { NODE_ENV: 'production', SOURCES_API_URL: 'http://s', SOURCES_PSK: 'p', RHSM_API_URL: 'http://r/v1', DATABASE_URL: 'postgres://d/c', INTERNAL_TOKEN }
  const { INTERNAL_TOKEN: _, ...withoutInternal } = base
  t.throws(() => assertProductionReady(loadConfig({ ...withoutInternal, PUSH_AUTH: 'none' })), { message: /NODE_ENV=production needs INTERNAL_TOKEN/ })
  t.throws(() => assertProductionReady(loadConfig(base)), { message: /needs push authentication/ })
  t.doesNotThrow(() => assertProductionReady(loadConfig({ ...base, PUSH_AUTH: 'none' })))
  t.doesNotThrow(() => assertProductionReady(loadConfig({ ...base, PUSH_WEBHOOK_SECRET: SECRET })))
  t.doesNotThrow(() => assertProductionReady(loadConfig({ ...base, PUSH_TOKEN })))
  t.doesNotThrow(() => assertProductionReady(loadConfig({ ...base, KAFKA_CONSUME: 'true', KAFKA_BROKERS: 'k:9092' })), 'no push route, no push authentication needed')
  t.throws(() => loadConfig({ PUSH_WEBHOOK_SECRET: 'not-a-secret' }), { message: /PUSH_WEBHOOK_SECRET/ })
  t.throws(() => loadConfig({ PUSH_AUTH: 'maybe' }), { message: /PUSH_AUTH/ })
})

t.test('an open push route warns once at start, unless PUSH_AUTH=none says it is meant', async t => {
  const logs: string[] = []
  for (const env of [{}, { PUSH_AUTH: 'none' }]) {
    const dataDir = mkdtempSync(join(tmpdir(), 'cloudoreg-push-'))
    const app = await buildApp({
      config: loadConfig({ DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(await freePort()), ...TEST_SHEDDING, ...env }),
      logStream: new Writable({ write (chunk, _e, done) { logs.push(chunk.toString()); done() } })
    })
    await app.ready()
    await app.close()
    rmSync(dataDir, { recursive: true, force: true })
  }
  t.equal(logs.filter(l => l.includes('the push route accepts anyone')).length, 1)
})

t.test('the availability check takes what sources-api sends, never an Authorization header; AVAILABILITY_CHECK_TOKEN is gone', async t => {
  // A deployment that still sets it must not silently refuse every re-check.
  const app = await startBareApp(t, { AVAILABILITY_CHECK_TOKEN: 'check-token-123' })
  const check = (path: string, headers: Record<string, string>): Promise<LightMyRequestResponse> => app.inject({
    method: 'POST', url: path, headers: { 'content-type': 'application/json;charset=utf-8', ...headers }, payload: '{"source_id":"7"}'
  })
  for (const path of ['/internal/api/cloudoreg/v1/availability_status', '/internal/api/cloudigrade/v1/availability_status']) {
    // sources-api-go's availability checker: identity, org id, account number (empty when the tenant has none), content type.
    t.equal((await check(path, { 'x-rh-identity': identities.base64.system_7654321, 'x-rh-sources-org-id': '7654321', 'x-rh-sources-account-number': '' })).statusCode, 204, path)
    t.equal((await check(path, {})).statusCode, 401, `${path}: no tenant`)
  }
  t.notMatch(readFileSync(new URL('../src/config.ts', import.meta.url), 'utf8'), /AVAILABILITY_CHECK_TOKEN/)
})
