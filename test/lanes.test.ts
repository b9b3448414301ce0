import t from 'tap'
import { checkEvent } from '../src/events/check.js'
import { CHECK_EVENT, RECONCILE_EVENT } from '../src/events/event.js'
import { LANES, laneOf } from '../src/events/lanes.js'
import { lowerLaneSlots } from '../src/pipeline/runner.js'
import { eventually, identities, ORG, pushNative, startBareApp, startStack } from './helpers/stack.js'

// Lanes: customer actions run before sources-api's re-checks, which run before operators' bulk work;
// orgs take turns within a lane; a source's own events still run in order. Re-checks coalesce.

const ROLE = (n: number): string => `arn:aws:iam::${String(100000000000 + n)}:role/redhat-cloud-meter`
const INTERNAL_TOKEN = 'internal-token-for-lanes-0123456789abcdef'

t.test('laneOf: one rule from the event type, who asked, and whether it is a replay', async t => {
  const create = { eventType: 'ApplicationAuthentication.create', body: {}, replayOf: null }
  t.equal(laneOf(create), LANES.customer)
  t.equal(laneOf({ eventType: 'Application.pause', body: {}, replayOf: null }), LANES.customer)
  t.equal(laneOf({ eventType: CHECK_EVENT, body: { requested_by: 'sources-api' }, replayOf: null }), LANES.recheck)
  t.equal(laneOf({ eventType: CHECK_EVENT, body: { requested_by: 'operator' }, replayOf: null }), LANES.bulk)
  t.equal(laneOf({ eventType: CHECK_EVENT, body: { requested_by: 'customer' }, replayOf: null }), LANES.customer)
  t.equal(laneOf({ ...create, replayOf: 7 }), LANES.bulk)
  t.equal(laneOf({ eventType: RECONCILE_EVENT, body: { requested_by: 'reconcile' }, replayOf: null }), LANES.bulk, 'a reconciliation\'s repair')
  t.equal(laneOf({ eventType: CHECK_EVENT, body: { requested_by: 'sources-api' }, replayOf: 7 }), LANES.bulk)
})

t.test('every way in stores the lane with the event; a re-check while one is pending is coalesced', async t => {
  // No upstreams: everything stays pending, as stored.
  const app = await startBareApp(t, { INTERNAL_TOKEN })
  const lanes = async (): Promise<Array<{ id: number, event_type: string, lane: number, replay_of: number | null }>> =>
    (await app.store.pool.query('select id::int, event_type, lane, replay_of::int from inbox order by id')).rows
  const push = await app.inject({
    method: 'POST',
    url: '/internal/v1/events',
    headers: { 'content-type': 'application/json', event_type: 'ApplicationAuthentication.create', 'x-rh-sources-org-id': ORG },
    payload: { application_id: 42, authentication_id: 311 }
  })
  t.equal(push.statusCode, 202)
  const tenant = { orgId: ORG, accountNumber: null }
  const [recheck] = await app.store.inbox.append([checkEvent(tenant, '7', 'sources-api')])
  const [customer] = await app.store.inbox.append([checkEvent(tenant, '7', 'customer')])
  const [operator] = await app.store.inbox.append([checkEvent(tenant, '7', 'operator')])
  // sources-api's check of the same source a minute later (another delivery key) while the first is still pending: that one.
  const [again] = await app.store.inbox.append([{ ...checkEvent(tenant, '7', 'sources-api'), dedupeKey: 'a-minute-later' }])
  t.equal(again, null, 'coalesced: the pending re-check runs, nothing else is stored')
  const [otherSource] = await app.store.inbox.append([checkEvent(tenant, '8', 'sources-api')])
  t.type(otherSource, 'number', 'another source has its own re-check')
  const check = await app.inject({
    method: 'POST',
    url: '/internal/api/cloudoreg/v1/availability_status',
    headers: { 'content-type': 'application/json', 'x-rh-identity': identities.base64.system_7654321, 'x-rh-sources-org-id': ORG },
    payload: { source_id: '7' }
  })
  t.equal(check.statusCode, 204, 'sources-api hears 204, as for any check')
  t.equal(check.headers['cloudoreg-event-id'], undefined, 'naming no new event')

  // An ended event replayed by an operator: bulk work, whatever it copies.
  await app.store.pool.query("update inbox set state = 'dead' where id = $1", [recheck])
  const replay = await app.inject({ method: 'POST', url: `/internal/v1/events/${recheck}/replay`, headers: { authorization: `Bearer ${INTERNAL_TOKEN}` } })
  t.equal(replay.statusCode, 202)
  // The first re-check ended: the next one is stored.
  const [next] = await app.store.inbox.append([{ ...checkEvent(tenant, '7', 'sources-api'), dedupeKey: 'the-next-round' }])
  t.type(next, 'number', 'once the pending re-check ended, a new one is stored')

  const rows = await lanes()
  const laneById = new Map(rows.map(r => [r.id, r.lane]))
  t.equal(rows[0].lane, LANES.customer, 'a pushed create')
  t.equal(laneById.get(recheck!), LANES.recheck)
  t.equal(laneById.get(customer!), LANES.customer)
  t.equal(laneById.get(operator!), LANES.bulk)
  t.equal(rows.find(r => r.replay_of === recheck)?.lane, LANES.bulk, 'a replay')
  t.equal(laneById.get(next!), LANES.recheck)
  t.equal(rows.filter(r => r.event_type === CHECK_EVENT && r.lane === LANES.recheck).length, 3, 'source 7: the first (ended) and the next; source 8: one')
})

t.test('a create runs before a backlog of re-checks drains; orgs take turns; each source keeps its order', async t => {
  const stack = await startStack(t, { env: { CONCURRENCY: '2', INBOX_WINDOW: '30', CHECK_REUSE_SECONDS: '0' } })
  const { sources, app } = stack
  sources.delayMs = 2
  const pool = app.store.pool
  const pendingOf = async (org: string): Promise<number> =>
    (await pool.query("select count(*)::int as n from inbox where state = 'pending' and org_id = $1", [org])).rows[0].n

  // Five registered sources of the big org, each then getting a re-check (lane 1) and an update of its
  // authentication (lane 0) behind it: the update must not overtake the re-check of its own source.
  for (let n = 1; n <= 5; n++) {
    sources.addSource({ sourceId: String(n), applicationId: String(100 + n), authenticationId: String(200 + n), arn: ROLE(n) })
    await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 100 + n, authentication_id: 200 + n })
  }
  await eventually(async () => (await pendingOf(ORG)) === 0 ? true : undefined, 30_000, 'the five creates')

  // The wave: 400 re-checks of ORG queued first, then 20 of each of three other orgs.
  const BIG = 400
  const SMALL = 20
  const others = ['2000001', '2000002', '2000003']
  let id = 1000
  const wave = (org: string, count: number): ReturnType<typeof checkEvent>[] => Array.from({ length: count }, () => {
    id++
    sources.addSource({ sourceId: String(id), applicationId: String(id + 10_000), authenticationId: String(id + 20_000), arn: ROLE(id) })
    return checkEvent({ orgId: org, accountNumber: null }, String(id), 'sources-api')
  })
  const big = wave(ORG, BIG)
  const small = others.flatMap(org => wave(org, SMALL))
  const mixed = [1, 2, 3, 4, 5].map(n => checkEvent({ orgId: ORG, accountNumber: null }, String(n), 'sources-api'))
  await app.store.inbox.append([...mixed, ...big])
  for (let n = 1; n <= 5; n++) {
    await pushNative(stack.url, 'Authentication.update', { id: String(200 + n), resource_type: 'Application', resource_id: String(100 + n) })
  }
  await app.store.inbox.append(small)

  // A new org links an account now.
  sources.addSource({ sourceId: '9001', applicationId: '9101', authenticationId: '9201', arn: ROLE(9001) })
  t.equal((await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 9101, authentication_id: 9201 },
    { 'x-rh-sources-org-id': '3000001' })).status, 202)
  await eventually(async () => {
    const { rows } = await pool.query("select state from registrations where source_id = '9001'")
    return rows[0]?.state === 'registered' ? true : undefined
  }, 60_000, 'the new org\'s create')
  const bigPendingAtCreate = await pendingOf(ORG)
  t.ok(bigPendingAtCreate > BIG / 2, `the create ran while ${bigPendingAtCreate} of the big org's ${BIG} re-checks still waited`)

  await eventually(async () => {
    for (const org of others) if (await pendingOf(org) > 0) return undefined
    return true
  }, 60_000, 'the small orgs\' re-checks')
  const bigPendingAtSmallDone = await pendingOf(ORG)
  t.ok(bigPendingAtSmallDone > BIG / 2, `the three small orgs were done while ${bigPendingAtSmallDone} of the big org's re-checks still waited (turns, not arrival order)`)

  await eventually(async () => (await pendingOf(ORG)) === 0 ? true : undefined, 120_000, 'the whole wave')
  const { rows: ends } = await pool.query('select state, count(*)::int as n from inbox group by state order by state')
  t.same(ends, [{ state: 'done', n: 5 + 5 + 5 + BIG + 3 * SMALL + 1 }], 'every event done once, none dead')
  // Order per source: each update ended after the re-check queued before it on its source.
  const { rows: order } = await pool.query(`
    select c.finished_at < u.finished_at as in_order from inbox c join inbox u
      on u.event_type = 'Authentication.update' and u.queue_key = 'app:' || (100 + (c.body->>'source_id')::int)
    where c.event_type = $1 and (c.body->>'source_id')::int between 1 and 5`, [CHECK_EVENT])
  t.equal(order.length, 5)
  t.ok(order.every(r => r.in_order), 'the update never overtook the re-check queued before it on its source')
  t.comment(`big org pending when the create was registered: ${bigPendingAtCreate}/${BIG}; when the small orgs were done: ${bigPendingAtSmallDone}/${BIG}`)
})

t.test('re-checks hold at most three quarters of the slots: a create during a wave gets a free slot at once', async t => {
  t.equal(lowerLaneSlots(64), 48)
  t.equal(lowerLaneSlots(4), 3)
  t.equal(lowerLaneSlots(2), 1)
  t.equal(lowerLaneSlots(1), 1, 'one slot is shared: there is nothing to keep free')

  // Held answers must not time out into retries, which would be requests of their own.
  const stack = await startStack(t, { env: { CONCURRENCY: '4', CHECK_REUSE_SECONDS: '0', UPSTREAM_TIMEOUT_MS: '60000' } })
  const { sources, app } = stack
  // One create first, so that the application type is known: its lookup is shared by every attempt while in flight.
  sources.addSource({ sourceId: '9003', applicationId: '9103', authenticationId: '9203', arn: ROLE(9003) })
  await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 9103, authentication_id: 9203 })
  await eventually(async () => {
    const { rows } = await app.store.pool.query("select state from registrations where source_id = '9003'")
    return rows[0]?.state === 'registered' ? true : undefined
  }, 30_000, 'the first create')
  // Every sources-api answer waits now: an attempt holds its slot until resumed.
  sources.pause()
  const wave = Array.from({ length: 12 }, (_, i) => {
    const id = 5000 + i
    sources.addSource({ sourceId: String(id), applicationId: String(id + 10_000), authenticationId: String(id + 20_000), arn: ROLE(id) })
    return checkEvent({ orgId: ORG, accountNumber: null }, String(id), 'sources-api')
  })
  await app.store.inbox.append(wave)
  let seen = 0
  await eventually(async () => { seen = sources.heldRequests().length; return seen === 3 ? true : undefined }, 30_000, 'three re-checks waiting on sources-api').catch((err: Error) => { throw new Error(`${err.message} (held: ${seen}, requests: ${sources.requests.length})`) })

  sources.addSource({ sourceId: '9002', applicationId: '9102', authenticationId: '9202', arn: ROLE(9002) })
  t.equal((await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 9102, authentication_id: 9202 },
    { 'x-rh-sources-org-id': '3000002' })).status, 202)
  // The create's first call reaches sources-api while the three re-checks still hold theirs.
  await eventually(async () => sources.heldRequests().some(r => r.path.includes('9102')) ? true : undefined, 30_000, 'the create\'s call')
  const held = sources.heldRequests()
  t.equal(held.length, 4, 'three re-checks and the create: every slot in use, none by a fourth re-check')
  t.equal(held.filter(r => !r.path.includes('9102')).length, 3)

  sources.resume()
  await eventually(async () => {
    const { rows } = await app.store.pool.query("select count(*)::int as n from inbox where state = 'pending'")
    return rows[0].n === 0 ? true : undefined
  }, 60_000, 'the wave and the create')
  const { rows } = await app.store.pool.query("select state from registrations where source_id = '9002'")
  t.equal(rows[0]?.state, 'registered')
})
