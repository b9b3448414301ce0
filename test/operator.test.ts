import t from 'tap'
import { eventually, getJson, identities, inboxStates, pushNative, startStack } from './helpers/stack.js'

const TOKEN = 'internal-token-for-tests-0123456789ab'
const ROLE = 'arn:aws:iam::123456789012:role/redhat-cloud-meter'

t.test('an upstream that fails until retries run out: dead letter, CR5000, then a replay that succeeds; reverify; history', async t => {
  const stack = await startStack(t, { env: { INTERNAL_TOKEN: TOKEN, RETRY_MAX_ATTEMPTS: '2', UPSTREAM_CALL_ATTEMPTS: '1' } })
  const op = (path: string, init: RequestInit = {}, token = TOKEN): Promise<Response> =>
    fetch(`${stack.url}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...init.headers } })
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE })
  stack.sts.failureRate = 1
  await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 42, authentication_id: 311 })
  await eventually(async () => (await inboxStates(stack))[0]?.state === 'dead' ? true : undefined)
  t.match((await getJson(`${stack.url}/api/cloudoreg/v1/sources/7`)).body, { state: 'unavailable', error: { code: 'CR5000' } })

  t.equal((await fetch(`${stack.url}/internal/v1/dead-letters`)).status, 401)
  t.equal((await fetch(`${stack.url}/internal/v1/dead-letters`, { headers: { 'x-rh-identity': identities.base64.user_7654321 } })).status, 401, 'an identity alone is not enough')
  t.equal((await op('/internal/v1/dead-letters', {}, 'wrong-token-123')).status, 401)
  const dead = await (await op('/internal/v1/dead-letters')).json()
  t.equal(dead.meta.count, 1)
  t.match(dead.data[0], { id: 1, event_type: 'ApplicationAuthentication.create', org_id: '7654321', source_id: '7', queue_key: 'app:42', attempts: 2, last_error: /sts/, replayed_as: null })
  t.match(dead.links, { first: '/internal/v1/dead-letters?limit=100&offset=0', next: null, previous: null })

  stack.sts.failureRate = 0
  t.equal((await op('/internal/v1/events/999/replay', { method: 'POST' })).status, 404)
  const replay = await op('/internal/v1/events/1/replay', { method: 'POST' })
  t.equal(replay.status, 202)
  t.equal(replay.headers.get('cloudoreg-event-id'), '2')
  const { replayed_as: copy } = await replay.json()
  t.equal(copy, 2)
  const again = await op('/internal/v1/events/1/replay', { method: 'POST' })
  t.equal(again.status, 409, 'an event is replayed once')
  t.match(await again.json(), { detail: /already replayed as event 2/ })
  t.equal((await (await op('/internal/v1/dead-letters')).json()).meta.count, 0, 'a replayed dead letter leaves the default list')
  const all = await (await op('/internal/v1/dead-letters?include_replayed=true&limit=1')).json()
  t.match(all, { meta: { count: 1, limit: 1 }, data: [{ id: 1, replayed_as: 2 }] })
  t.match(all.links, { first: '/internal/v1/dead-letters?limit=1&offset=0&include_replayed=true' })
  t.match(await (await op('/internal/v1/events/2')).json(), { id: 2, replay_of: 1, description: 'ApplicationAuthentication.create (replay of event 1)' })
  await eventually(async () => (await getJson(`${stack.url}/api/cloudoreg/v1/sources/7`)).body.state === 'registered' ? true : undefined)

  t.equal((await op('/internal/v1/sources/404/reverify', { method: 'POST' })).status, 404)
  const reverify = await op('/internal/v1/sources/7/reverify', { method: 'POST' })
  t.equal(reverify.status, 202)
  t.equal(reverify.headers.get('cloudoreg-event-id'), '3')
  await eventually(async () => {
    const rows = await inboxStates(stack)
    return rows.length === 3 && rows[2].state === 'done' ? true : undefined
  })
  t.equal(stack.rhsm.requests.length, 1, 'the re-verification found the mapping already held')

  const history = await getJson(`${stack.url}/api/cloudoreg/v1/sources/7/history`)
  t.equal(history.status, 200)
  t.match(history.body, { source_id: '7', application_id: '42' })
  const eventsIn = (timeline: any[]): any[] => timeline.filter(e => e.kind === 'event')
  const statusesIn = (timeline: any[]): any[] => timeline.filter(e => e.kind === 'status')
  t.same(eventsIn(history.body.timeline).map((e: any) => [e.event_type, e.description, e.state, e.outcome]), [
    ['ApplicationAuthentication.create', 'ApplicationAuthentication.create', 'dead', 'CR5000'],
    ['ApplicationAuthentication.create', 'ApplicationAuthentication.create (replay of event 1)', 'done', 'registered'],
    ['cloudoreg.check', 're-verification requested by an operator', 'done', 'verified; mapping already held']
  ])
  t.match(eventsIn(history.body.timeline)[0].last_error, /sts/)
  await eventually(async () => statusesIn((await getJson(`${stack.url}/api/cloudoreg/v1/sources/7/history`)).body.timeline).every((s: any) => s.sent_at !== null || s.superseded) ? true : undefined)
  const statuses = statusesIn((await getJson(`${stack.url}/api/cloudoreg/v1/sources/7/history`)).body.timeline)
  t.same(statuses.map((s: any) => s.status), ['unavailable', 'available', 'available'])
  const { body: { timeline } } = await getJson(`${stack.url}/api/cloudoreg/v1/sources/7/history`)
  t.same(timeline.map((e: any) => e.kind === 'event' ? e.event_id : e.status),
    [1, 'unavailable', 2, 'available', 3, 'available'], 'events and the statuses they caused, in time order')
  t.match(statuses[0].error, /CR5000/)
  t.equal((await getJson(`${stack.url}/api/cloudoreg/v1/sources/7/history`, identities.base64.user_other_org_1111111)).status, 404)
})

t.test('operator routes are closed without a configured token', async t => {
  const stack = await startStack(t)
  const res = await fetch(`${stack.url}/internal/v1/dead-letters`, { headers: { authorization: 'Bearer anything-at-all' } })
  t.equal(res.status, 401)
  t.match(await res.json(), { detail: /INTERNAL_TOKEN/ })
})
