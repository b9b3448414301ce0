import t from 'tap'
import { createRecord, eventually, getJson, identities, inboxStates, pushNative, startBareApp, startStack, untilNot503 } from './helpers/stack.js'

const TOKEN = 'internal-token-for-follow-tests-0123456789'
const ROLE = 'arn:aws:iam::123456789012:role/redhat-cloud-meter'
const SOURCE = '/api/cloudoreg/v1/sources'

t.test('the push reply names the stored events; a redelivery names the originals', async t => {
  const stack = await startStack(t)
  const first = await untilNot503(() => pushNative(stack.url, 'Application.update', { id: 42, source_id: 7 }, { 'webhook-id': 'msg-1' }))
  t.equal(first.status, 202)
  t.equal(first.headers.get('cloudoreg-event-id'), '1')
  t.equal(await first.text(), '', 'the body stays empty for bridges')
  const again = await untilNot503(() => pushNative(stack.url, 'Application.update', { id: 42, source_id: 7 }, { 'webhook-id': 'msg-1' }))
  t.equal(again.status, 200)
  t.equal(again.headers.get('cloudoreg-event-id'), '1', 'the redelivery names the original')

  const batch = (records: unknown[]): Promise<Response> => untilNot503(() => fetch(`${stack.url}/internal/v1/events`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ records })
  }))
  const two = await batch([createRecord(10, 900, 9000), createRecord(11, 901, 9001)])
  t.equal(two.status, 202)
  t.equal(two.headers.get('cloudoreg-event-id'), '2,3')
  const mixed = await batch([createRecord(11, 901, 9001), createRecord(12, 902, 9002)])
  t.equal(mixed.status, 202)
  t.equal(mixed.headers.get('cloudoreg-event-id'), '3,4', 'the batch names each record, a repeated one by its original id')
})

t.test('one log line per finished event, at info, with what support asks first', async t => {
  const stack = await startStack(t)
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE })
  await untilNot503(() => pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 42, authentication_id: 311 }))
  await untilNot503(() => pushNative(stack.url, 'Records.update', { id: 5 }))
  const finished = await eventually(() => {
    const lines = stack.logs.flatMap(l => l.split('\n')).filter(l => l.includes('"event finished"')).map(l => JSON.parse(l))
    return lines.length === 2 ? lines : undefined
  })
  const created = finished.find(l => l.eventType === 'ApplicationAuthentication.create')
  t.match(created, { level: 30, eventId: 1, sourceId: '7', applicationId: '42', orgId: '7654321', state: 'done', outcome: 'registered', status: 'available', errorCode: null, attempts: 1 })
  t.type(created.durationMs, 'number')
  t.match(finished.find(l => l.eventType === 'Records.update'), { level: 30, state: 'ignored', sourceId: null, applicationId: null, attempts: 0 })
})

t.test('a source whose events wait is pending with what it waits for; sourceless events are found by id', async t => {
  const app = await startBareApp(t, { INTERNAL_TOKEN: TOKEN })
  const push = async (eventType: string, body: unknown): Promise<{ statusCode: number, headers: Record<string, unknown>, body: string }> => {
    for (;;) {
      const res = await app.inject({
        method: 'POST',
        url: '/internal/v1/events',
        headers: { 'content-type': 'application/json', event_type: eventType, 'x-rh-sources-org-id': '7654321' },
        payload: JSON.stringify(body)
      })
      // Load shedding on a busy machine: resend, as a bridge would.
      if (res.statusCode !== 503) return res
      await new Promise(resolve => setTimeout(resolve, 200))
    }
  }
  const get = (url: string, identity = identities.base64.user_7654321): Promise<{ statusCode: number, json: () => any }> =>
    app.inject({ url, headers: { 'x-rh-identity': identity } })

  t.match((await get(`${SOURCE}/7`)).json(), { status: 404, detail: /no registration and no waiting event/ })
  const paused = await push('Application.pause', { id: 42, source_id: 7 })
  t.equal(paused.statusCode, 202, paused.body)
  const pending = await get(`${SOURCE}/7`)
  t.equal(pending.statusCode, 200)
  t.match(pending.json(), {
    source_id: '7',
    application_id: '42',
    state: 'pending',
    mapped: false,
    waiting: { events: 1, event_ids: [1], reason: /^upstreams not configured: SOURCES_API_URL, SOURCES_PSK, RHSM_API_URL/, next_attempt_at: null }
  })
  t.equal((await get(`${SOURCE}/7`, identities.base64.user_other_org_1111111)).statusCode, 404, 'another org sees nothing')
  const history = (await get(`${SOURCE}/7/history`)).json()
  t.match(history.timeline, [{ kind: 'event', event_id: 1, event_type: 'Application.pause', state: 'pending' }])

  const create = await push('ApplicationAuthentication.create', { application_id: 77, authentication_id: 770 })
  t.equal(create.headers['cloudoreg-event-id'], '2')
  t.match((await get(`${SOURCE}/8`)).json(), { status: 404, detail: /1 event of your org waits whose source is not known yet \(upstreams not configured/ })
  const byId = await app.inject({ url: '/internal/v1/events/2', headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(byId.statusCode, 200)
  t.match(byId.json(), { id: 2, event_type: 'ApplicationAuthentication.create', org_id: '7654321', source_id: null, queue_key: 'app:77', state: 'pending', body: { application_id: 77 } })
  t.equal((await app.inject({ url: '/internal/v1/events/2', headers: { 'x-rh-identity': identities.base64.user_7654321 } })).statusCode, 401)
  t.equal((await app.inject({ url: '/internal/v1/events/99', headers: { authorization: `Bearer ${TOKEN}` } })).statusCode, 404)
})

t.test('a retrying source says when it retries, before any registration exists', async t => {
  const stack = await startStack(t, { env: { RETRY_BASE_DELAY_MS: '600000', RETRY_MAX_DELAY_MS: '600000' } })
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE })
  stack.sts.failureRate = 1
  await untilNot503(() => pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 42, authentication_id: 311 }))
  await eventually(async () => (await inboxStates(stack))[0]?.attempts === 1 ? true : undefined)
  const { status, body } = await getJson(`${stack.url}${SOURCE}/7`)
  t.equal(status, 200)
  t.match(body, { source_id: '7', state: 'pending', waiting: { events: 1, reason: /^retrying at \S+ after attempt 1 failed: sts/ } })
  t.ok(Date.parse(body.waiting.next_attempt_at) > Date.now())
})

t.test('Authentication.destroy of the credential a registration uses: confirmed, org-checked, unmapped and reported', async t => {
  const stack = await startStack(t)
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE })
  await untilNot503(() => pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 42, authentication_id: 311 }))
  await eventually(async () => (await getJson(`${stack.url}${SOURCE}/7`)).body.state === 'registered' ? true : undefined)
  const destroy = { id: '311', resource_type: 'Application', resource_id: '42' }
  const ended = async (n: number): Promise<Array<{ outcome: string | null }>> =>
    eventually(async () => { const rows = await inboxStates(stack); return rows.length === n && rows[n - 1].state !== 'pending' ? rows : undefined })

  await untilNot503(() => pushNative(stack.url, 'Authentication.destroy', destroy, { 'x-rh-sources-org-id': '1111111', 'x-rh-identity': identities.base64.user_other_org_1111111 }))
  t.equal((await ended(2))[1].outcome, 'registration belongs to another org; nothing done')
  await untilNot503(() => pushNative(stack.url, 'Authentication.destroy', destroy, { 'webhook-id': 'first' }))
  t.equal((await ended(3))[2].outcome, 'authentication still exists in sources-api; nothing removed')
  await untilNot503(() => pushNative(stack.url, 'Authentication.destroy', { ...destroy, id: '999' }))
  t.equal((await ended(4))[3].outcome, 'not the authentication the registration uses')
  t.equal(stack.rhsm.requests.filter(r => r.method === 'DELETE').length, 0)

  stack.sources.authentications.delete('311')
  await untilNot503(() => pushNative(stack.url, 'Authentication.destroy', destroy, { 'webhook-id': 'second' }))
  t.match((await ended(5))[4].outcome, /^mapping removed; authentication deleted, CG2000 reported/)
  t.match((await getJson(`${stack.url}${SOURCE}/7`)).body, { state: 'unavailable', mapped: false, authentication_id: null, error: { code: 'CG2000' } })
  t.equal(stack.rhsm.requests.filter(r => r.method === 'DELETE').length, 1)
  await eventually(() => stack.sources.patches.some(p => (p.body as any).availability_status === 'unavailable') ? true : undefined)
  t.match(stack.sources.patches.at(-1), { applicationId: '42', body: { availability_status: 'unavailable', availability_status_error: /CG2000/ } })
})
