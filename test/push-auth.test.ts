import { createHmac } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { assertProductionReady, loadConfig } from '../src/config.js'
import { verifyWebhookSignature } from '../src/plugins/app/auth.js'
import { readFixture } from './helpers/fixtures.js'
import { freePort, startBareApp } from './helpers/stack.js'

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

t.test('the push route takes a token or a fresh signature', async t => {
  const app = await startBareApp(t, { PUSH_WEBHOOK_SECRET: SECRET, PUSH_TOKEN: 'push-token-abcdef' })
  const headers = { ...signed.http_headers }
  delete headers['webhook-signature']
  const now = Math.floor(Date.now() / 1000)
  const post = (h: Record<string, string>, body = signed.raw_body): Promise<LightMyRequestResponse> =>
    app.inject({ method: 'POST', url: '/internal/v1/events', headers: h, payload: body })

  t.equal((await post({ ...headers, 'webhook-timestamp': String(now), 'webhook-signature': sign('msg_2nGd0Yv0vDq7yQkq', now, signed.raw_body) })).statusCode, 202)
  t.equal((await post({ ...signed.http_headers })).statusCode, 401, 'the fixture itself is too old today')
  t.equal((await post({ ...headers, 'webhook-id': 'msg_x', 'webhook-timestamp': String(now), 'webhook-signature': sign('msg_other', now, signed.raw_body) })).statusCode, 401, 'signed for another id')
  t.equal((await post({ ...headers, 'webhook-id': 'msg_y', authorization: 'Bearer push-token-abcdef' })).statusCode, 202, 'or the token')
  const { rows } = await app.store.pool.query('select delivery_id from inbox order by id')
  t.same(rows.map(r => r.delivery_id), ['msg_2nGd0Yv0vDq7yQkq', 'msg_y'])
})

t.test('push authentication in production: required unless PUSH_AUTH=none', async t => {
  const base = { NODE_ENV: 'production', SOURCES_API_URL: 'http://s', SOURCES_PSK: 'p', RHSM_API_URL: 'http://r/v1', DATABASE_URL: 'postgres://d/c' }
  t.throws(() => assertProductionReady(loadConfig(base)), { message: /needs push authentication/ })
  t.doesNotThrow(() => assertProductionReady(loadConfig({ ...base, PUSH_AUTH: 'none' })))
  t.doesNotThrow(() => assertProductionReady(loadConfig({ ...base, PUSH_WEBHOOK_SECRET: SECRET })))
  t.doesNotThrow(() => assertProductionReady(loadConfig({ ...base, PUSH_TOKEN: 'push-token-abcdef' })))
  t.throws(() => loadConfig({ PUSH_WEBHOOK_SECRET: 'not-a-secret' }), { message: /PUSH_WEBHOOK_SECRET/ })
  t.throws(() => loadConfig({ PUSH_AUTH: 'maybe' }), { message: /PUSH_AUTH/ })
})

t.test('an open push route warns once at start, unless PUSH_AUTH=none says it is meant', async t => {
  const logs: string[] = []
  for (const env of [{}, { PUSH_AUTH: 'none' }]) {
    const dataDir = mkdtempSync(join(tmpdir(), 'cloudoreg-push-'))
    const app = await buildApp({
      config: loadConfig({ DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(await freePort()), ...env }),
      logStream: new Writable({ write (chunk, _e, done) { logs.push(chunk.toString()); done() } })
    })
    await app.ready()
    await app.close()
    rmSync(dataDir, { recursive: true, force: true })
  }
  t.equal(logs.filter(l => l.includes('the push route accepts anyone')).length, 1)
})

t.test('AVAILABILITY_CHECK_TOKEN, when set, is required besides the tenant', async t => {
  const app = await startBareApp(t, { AVAILABILITY_CHECK_TOKEN: 'check-token-123' })
  const check = (headers: Record<string, string>): Promise<LightMyRequestResponse> => app.inject({
    method: 'POST', url: '/internal/api/cloudoreg/v1/availability_status', headers: { 'content-type': 'application/json', ...headers }, payload: '{"source_id":"7"}'
  })
  t.equal((await check({ 'x-rh-sources-org-id': '7654321' })).statusCode, 401)
  t.equal((await check({ 'x-rh-sources-org-id': '7654321', authorization: 'Bearer check-token-123' })).statusCode, 204)
  t.equal((await check({ authorization: 'Bearer check-token-123' })).statusCode, 401, 'the token alone is not a tenant')
})
