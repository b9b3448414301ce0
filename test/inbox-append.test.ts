import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { checkEvent } from '../src/events/check.js'
import type { IncomingEvent } from '../src/events/event.js'
import { LANES } from '../src/events/lanes.js'
import { ORG, startBareApp } from './helpers/stack.js'

// The inbox stores a group of one event with its own statement (PostgreSQL reuses its plan; it
// re-plans the array form on every execution) and larger groups with the array form. Both must
// store the same rows by the same rules: dedupe keys, their TTL, re-checks coalesced, the lane.

let app: FastifyInstance

t.before(async () => {
  app = await startBareApp(t)
})
t.beforeEach(async () => {
  await app.store.pool.query('truncate inbox, delivery_keys')
})

const TRACE = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tracestate: 'vendor=x' }

function create (n: number, over: Partial<IncomingEvent> = {}): IncomingEvent {
  return {
    eventType: 'ApplicationAuthentication.create',
    orgId: ORG,
    accountNumber: '0369233',
    body: { id: n, application_id: n, authentication_id: n + 1000, note: 'é ✓' },
    queueKey: `app:${n}`,
    dedupeKey: `test:${n}`,
    dedupeTtlMs: null,
    deliveryId: `delivery-${n}`,
    trace: TRACE,
    ...over
  }
}

const COLUMNS = 'event_type, queue_key, org_id, account_number, body, delivery_id, source_id, traceparent, tracestate, lane, state, attempts'

async function row (id: number): Promise<Record<string, unknown>> {
  const { rows: [r] } = await app.store.pool.query(`select ${COLUMNS} from inbox where id = $1`, [id])
  // The body's own ids differ between the events compared; the rest must not.
  return { ...r, body: { ...r.body, id: 0, application_id: 0, authentication_id: 0 }, queue_key: String(r.queue_key).replace(/\d+$/, 'N'), delivery_id: String(r.delivery_id).replace(/\d+$/, 'N') }
}

t.test('one event alone and events in a group are stored as the same rows', async t => {
  const [alone] = await app.store.inbox.append([create(1)])
  const grouped = await app.store.inbox.append([create(2), create(3)])
  t.type(alone, 'number')
  t.equal(grouped.length, 2)
  t.ok(grouped[0]! < grouped[1]!, 'a group keeps its order')
  t.same(await row(alone!), await row(grouped[0]!))
  t.same(await row(alone!), await row(grouped[1]!))
  t.match(await row(alone!), { event_type: 'ApplicationAuthentication.create', org_id: ORG, account_number: '0369233', traceparent: TRACE.traceparent, tracestate: 'vendor=x', lane: LANES.customer, state: 'pending', attempts: 0, body: { note: 'é ✓' } })
})

t.test('a redelivery is not stored again, alone or in a group; a key with a TTL is remembered that long', async t => {
  const [first] = await app.store.inbox.append([create(1)])
  t.same(await app.store.inbox.append([create(1)]), [null], 'alone')
  const mixed = await app.store.inbox.append([create(1), create(2)])
  t.equal(mixed[0], null, 'in a group')
  t.type(mixed[1], 'number')
  t.type(first, 'number')

  await app.store.inbox.append([create(3, { dedupeKey: 'ttl:3', dedupeTtlMs: 60_000 })])
  await app.store.inbox.append([create(4, { dedupeKey: 'ttl:4', dedupeTtlMs: 60_000 }), create(5, { dedupeKey: 'ttl:5', dedupeTtlMs: 60_000 })])
  const { rows } = await app.store.pool.query<{ key: string, secs: number | null }>(
    "select key, extract(epoch from expires_at - now())::int as secs from delivery_keys where key like 'ttl:%' or key = 'test:1' order by key")
  t.same(rows.map(r => r.key), ['test:1', 'ttl:3', 'ttl:4', 'ttl:5'])
  t.equal(rows[0].secs, null, 'a delivery id is remembered for good')
  for (const r of rows.slice(1)) t.ok(r.secs! > 50 && r.secs! <= 60, `${r.key} expires in about a minute (${r.secs} s)`)

  // An expired key may be stored again (a content hash's window has passed), in either form.
  await app.store.pool.query("update delivery_keys set expires_at = now() - interval '1 second' where key like 'ttl:%'")
  t.type((await app.store.inbox.append([create(3, { dedupeKey: 'ttl:3', dedupeTtlMs: 60_000 })]))[0], 'number')
  const again = await app.store.inbox.append([create(4, { dedupeKey: 'ttl:4', dedupeTtlMs: 60_000 }), create(5, { dedupeKey: 'ttl:5', dedupeTtlMs: 60_000 })])
  t.ok(again.every(id => typeof id === 'number'))
})

t.test('a re-check while one of its source is pending is coalesced, alone or in a group', async t => {
  const tenant = { orgId: ORG, accountNumber: null }
  // Operator checks get a fresh dedupe key each time: only the pending re-check coalesces them.
  const recheck = (source: string): IncomingEvent => ({ ...checkEvent(tenant, source, 'sources-api'), dedupeKey: `recheck:${source}:${Math.random()}` })
  const [first] = await app.store.inbox.append([recheck('7')])
  t.type(first, 'number')
  t.same(await app.store.inbox.append([recheck('7')]), [null], 'alone')
  const group = await app.store.inbox.append([recheck('7'), recheck('8')])
  t.equal(group[0], null, 'in a group')
  t.type(group[1], 'number')
  t.same(await app.store.inbox.append([recheck('8')]), [null])
  // A customer's check is not a re-check: never coalesced.
  t.type((await app.store.inbox.append([checkEvent(tenant, '7', 'customer')]))[0], 'number')
  const { rows } = await app.store.pool.query('select lane, count(*)::int as n from inbox group by lane order by lane')
  t.same(rows, [{ lane: LANES.customer, n: 1 }, { lane: LANES.recheck, n: 2 }])
})
