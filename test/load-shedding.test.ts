import type { LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { eventually, identities, ORG, startBareApp } from './helpers/stack.js'

t.test('over MAX_BACKLOG, pushes get 503 with Retry-After and are not stored; status routes and probes keep answering', async t => {
  const app = await startBareApp(t, { MAX_BACKLOG: '3' })
  const push = async (i: number): Promise<LightMyRequestResponse> => app.inject({
    method: 'POST',
    url: '/internal/v1/events',
    headers: { 'content-type': 'application/json', event_type: 'ApplicationAuthentication.create', 'x-rh-sources-org-id': ORG, 'webhook-id': `w-${i}` },
    payload: JSON.stringify({ application_id: i, authentication_id: i })
  })
  for (let i = 0; i < 4; i++) t.equal((await push(i)).statusCode, 202, 'under the limit (checked every few seconds)')
  const shed = await eventually(async () => {
    const res = await push(100)
    return res.statusCode === 503 ? res : undefined
  }, 15_000, 'the backlog check to trip')
  t.equal(shed.headers['retry-after'], '5')
  t.match(shed.json(), { status: 503, detail: /MAX_BACKLOG/ })
  const stored = async (): Promise<number> => (await app.store.pool.query('select count(*)::int as n from inbox')).rows[0].n
  const before = await stored()
  t.equal((await push(200)).statusCode, 503)
  t.equal(await stored(), before, 'a shed push is not stored')

  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 200)
  const status = await app.inject({ method: 'GET', url: '/api/cloudoreg/v1/sources', headers: { 'x-rh-identity': identities.base64.user_7654321 } })
  t.equal(status.statusCode, 200, 'the status API keeps answering')
  const check = await app.inject({ method: 'POST', url: '/internal/api/cloudoreg/v1/availability_status', headers: { 'content-type': 'application/json', 'x-rh-sources-org-id': ORG }, payload: '{"source_id":"7"}' })
  t.equal(check.statusCode, 503, 'queued work is shed too')

  await app.store.pool.query("update inbox set state = 'done'")
  await eventually(async () => (await push(101)).statusCode === 202 ? true : undefined, 15_000, 'pushes to be accepted again')
})
