import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { checkEvent } from '../src/events/check.js'
import { LANES } from '../src/events/lanes.js'
import { type EventEnd, type Outcome } from '../src/store/outcomes.js'
import { ORG, startBareApp } from './helpers/stack.js'

const KEY = 'source:7'
const ME = 'replica-me'

// Every table an outcome writes, as rows: what a fenced-out outcome must leave as it was.
async function snapshot (app: FastifyInstance): Promise<Record<string, unknown[]>> {
  const q = async (sql: string): Promise<unknown[]> => (await app.store.pool.query(sql)).rows
  return {
    registrations: await q('select * from registrations order by application_id'),
    status_outbox: await q('select * from status_outbox order by id'),
    destroyed_applications: await q('select * from destroyed_applications order by application_id'),
    registration_audit: await q('select * from registration_audit order by id'),
    inbox: await q('select * from inbox order by id')
  }
}

async function pendingEvent (app: FastifyInstance, n: number): Promise<number> {
  const [id] = await app.store.inbox.append([{
    eventType: 'Application.destroy',
    orgId: ORG,
    accountNumber: null,
    body: { id: 42, n },
    queueKey: KEY,
    dedupeKey: `outcomes-test-${n}`,
    dedupeTtlMs: null,
    deliveryId: null
  }])
  return id!
}

async function holdLease (app: FastifyInstance, owner: string): Promise<void> {
  await app.store.pool.query(
    `insert into source_leases (queue_key, owner, expires_at) values ($1, $2, now() + interval '1 hour')
     on conflict (queue_key) do update set owner = excluded.owner, expires_at = excluded.expires_at`, [KEY, owner])
}

// Every part at once: the registration (with an older row to overwrite), the status row, the tombstone, the audit line.
const outcome: Outcome = {
  note: 'destroyed',
  registration: {
    applicationId: '42',
    sourceId: '7',
    authenticationId: '311',
    orgId: ORG,
    accountNumber: null,
    awsAccountId: '123456789012',
    roleArn: 'arn:aws:iam::123456789012:role/r',
    state: 'removed',
    mapped: false,
    lastErrorCode: null,
    lastErrorMessage: null,
    attempts: 1,
    verified: false,
    failedStep: null,
    upstreamCode: null,
    externalId: 'ext-1',
    checked: true
  },
  status: { applicationId: '42', status: 'unavailable', error: 'removed' },
  tombstone: { applicationId: '42', sourceId: '7', orgId: ORG },
  audit: { orgId: ORG, applicationId: '42', sourceId: '7', action: 'refused', detail: 'another org' },
  roleSessionName: 'cloudoreg-s7-e1'
}

const TRACE = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tracestate: 'a=1' }

const endOf = (eventId: number): EventEnd => ({ eventId, leaseKey: KEY, leaseOwner: ME, orgId: ORG, accountNumber: null, attempts: 1, state: 'done', sourceId: null, trace: TRACE })

t.test('an outcome commits all its parts only while the lease is ours and the event pending; fenced out, it writes nothing', async t => {
  const app = await startBareApp(t)
  const first = await pendingEvent(app, 1)
  const second = await pendingEvent(app, 2)
  await app.store.pool.query(
    'insert into registrations (application_id, source_id, org_id, state, mapped, attempts) values (\'42\', \'7\', $1, \'registered\', true, 0)', [ORG])

  await holdLease(app, 'replica-other')
  const before = await snapshot(app)
  await t.rejects(app.store.recordOutcome(endOf(first), outcome), { code: 'CLOUDOREG_LEASE_LOST', message: /no longer held/ }, 'another replica holds the lease')
  t.same(await snapshot(app), before, 'lease lost: registration, status row, tombstone, audit line and inbox row unchanged')

  await holdLease(app, ME)
  await app.store.recordOutcome(endOf(first), outcome)
  const after = await snapshot(app)
  t.match(after.registrations, [{ application_id: '42', state: 'removed', mapped: false, last_event_id: String(first), external_id: 'ext-1', checked_at: Date }], 'the registration is written')
  t.match(after.status_outbox, [{ application_id: '42', status: 'unavailable', error: 'removed', org_id: ORG, ...TRACE, lane: LANES.customer }], 'the status row is written, with the event\'s trace and lane')
  t.match(after.destroyed_applications, [{ application_id: '42', source_id: '7' }], 'the tombstone is written')
  t.match(after.registration_audit, [{ application_id: '42', event_id: String(first), action: 'refused' }], 'the audit line is written')
  t.match(after.inbox, [{ id: String(first), state: 'done', outcome: 'destroyed', attempts: 1, source_id: '7', role_session_name: 'cloudoreg-s7-e1' }, { id: String(second), state: 'pending' }])

  // The event already ended (another replica's outcome won): the second write of the same end changes nothing.
  const changed = { ...outcome, note: 'again', status: { ...outcome.status!, error: 'again' }, registration: { ...outcome.registration!, state: 'registered' as const } }
  await t.rejects(app.store.recordOutcome(endOf(first), changed), { code: 'CLOUDOREG_LEASE_LOST', message: /already ended/ }, 'the event has ended')
  t.same(await snapshot(app), after, 'event ended: nothing written')

  // Only the inbox row's end: the smallest statement.
  await app.store.recordOutcome(endOf(second), { note: 'nothing to do' })
  t.match((await snapshot(app)).inbox, [{ state: 'done' }, { state: 'done', outcome: 'nothing to do' }])
})

t.test('the status row takes its event\'s lane: a re-check\'s status is sent behind customers\'', async t => {
  const app = await startBareApp(t)
  const [recheck] = await app.store.inbox.append([checkEvent({ orgId: ORG, accountNumber: null }, '7', 'sources-api')])
  await holdLease(app, ME)
  await app.store.recordOutcome(endOf(recheck!), { note: 'checked', status: { applicationId: '42', status: 'available', error: '' } })
  t.match((await snapshot(app)).status_outbox, [{ application_id: '42', status: 'available', lane: LANES.recheck }])
})
