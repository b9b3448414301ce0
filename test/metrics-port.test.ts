import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { metricsOnOwnPort } from '../src/plugins/app/metrics.js'
import { freePort, TEST_SHEDDING } from './helpers/stack.js'

interface Teardown { teardown: (fn: () => Promise<void> | void) => void }

/** The whole app on its own embedded PostgreSQL; not ready yet, so that a test sees start-up. */
async function build (t: Teardown, env: Record<string, string>): Promise<FastifyInstance> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cloudoreg-metrics-port-'))
  const app = await buildApp({
    config: loadConfig({ DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(await freePort()), HOST: '127.0.0.1', LOG_LEVEL: 'silent', ...TEST_SHEDDING, ...env }),
    logStream: new Writable({ write (_chunk, _encoding, done) { done() } })
  })
  t.teardown(async () => {
    await app.close()
    rmSync(dataDir, { recursive: true, force: true })
  })
  return app
}

t.test('which settings move /metrics off the main port', async t => {
  t.notOk(metricsOnOwnPort({ PORT: 8000, METRICS_PORT: undefined }), 'unset: on the main port')
  t.notOk(metricsOnOwnPort({ PORT: 8000, METRICS_PORT: 8000 }), 'the same port: on the main port')
  t.ok(metricsOnOwnPort({ PORT: 8000, METRICS_PORT: 9000 }))
  t.ok(metricsOnOwnPort({ PORT: 0, METRICS_PORT: 0 }), '0 is a free port of its own, whatever PORT is')
})

t.test('with METRICS_PORT, GET /metrics is served on its own port, and only there', async t => {
  const app = await build(t, { METRICS_PORT: '0' })
  t.equal(app.metricsAddress, null, 'nothing listens before the app is ready')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.metricsAddress!
  t.ok(address.port > 0, 'a free port was picked')
  t.not(address.port, (app.server.address() as { port: number }).port)

  const res = await fetch(`http://127.0.0.1:${address.port}/metrics`)
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
  t.match(await res.text(), /^cloudoreg_inbox_pending 0$/m, 'the service\'s own metrics, database gauges included')
  t.equal((await fetch(`http://127.0.0.1:${address.port}/metrics?name=x`)).status, 200, 'a query string is fine')
  t.equal((await fetch(`http://127.0.0.1:${address.port}/healthz`)).status, 404, 'nothing else on the metrics port')
  t.equal((await fetch(`http://127.0.0.1:${address.port}/metrics`, { method: 'POST' })).status, 404)

  t.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 404, 'not on the main port any more')
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'the rest of the main port is unchanged')

  await app.close()
  t.equal(app.metricsAddress, null)
  await t.rejects(fetch(`http://127.0.0.1:${address.port}/metrics`), 'closing the app closes the metrics port')
})

t.test('without METRICS_PORT, /metrics stays on the main port', async t => {
  const app = await build(t, {})
  await app.ready()
  t.equal(app.metricsAddress, null)
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 200)
  t.match(res.body, /^cloudoreg_inbox_pending 0$/m)
})

t.test('a METRICS_PORT already taken stops start-up', async t => {
  const taken = createServer()
  await new Promise<void>(resolve => taken.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { taken.close() })
  const app = await build(t, { METRICS_PORT: String((taken.address() as { port: number }).port) })
  await t.rejects(async () => { await app.ready() }, { code: 'EADDRINUSE' })
})

t.test('with PUSH_PORT, the push route is served on its own port, and only there', async t => {
  const app = await build(t, { PUSH_PORT: '0', PUSH_AUTH: 'none' })
  t.equal(app.pushAddress, null, 'nothing listens before the app is ready')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const push = `http://127.0.0.1:${app.pushAddress!.port}`
  const main = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const event = {
    method: 'POST',
    headers: { 'content-type': 'application/json', event_type: 'Application.pause', 'x-rh-sources-org-id': '7654321' },
    body: JSON.stringify({ id: 7 })
  }
  t.equal((await fetch(`${push}/internal/v1/events`, event)).status, 202, 'pushes are stored through the push port')
  const elsewhere = await fetch(`${main}/internal/v1/events`, event)
  t.equal(elsewhere.status, 404, 'not on the main port')
  t.match(await elsewhere.json(), { detail: /pushes go to PUSH_PORT/ })
  t.equal((await fetch(`${push}/healthz`)).status, 404, 'nothing else on the push port')
  t.equal((await fetch(`${main}/healthz`)).status, 200, 'the rest of the main port is unchanged')
  const { rows } = await app.store.pool.query<{ n: number }>('select count(*)::int as n from inbox')
  t.equal(rows[0].n, 1, 'only the push through the push port was stored')
  await app.close()
  t.equal(app.pushAddress, null)
})
