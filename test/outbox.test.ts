import t from 'tap'
import { Agent } from 'undici'
import { createSourcesClient } from '../src/sources/client.js'
import { httpStatusSink } from '../src/status/sinks.js'
import { withTransaction } from '../src/store/transaction.js'
import { startFakeSources } from './helpers/fake-sources.js'
import type pg from 'pg'
import { LANES, type Lane } from '../src/events/lanes.js'
import type { StatusFailure, StatusMessage, StatusWrite } from '../src/store/outbox.js'
import { eventually, ORG, PSK, pushNative, startBareApp, startStack } from './helpers/stack.js'

/** A status row as the outcome statement (src/store/outcomes.ts) writes it, which is the only writer in the service. */
async function insertStatus (db: pg.ClientBase, s: StatusWrite, orgId: string, accountNumber: string | null, lane: Lane = LANES.customer): Promise<void> {
  await db.query(
    'insert into status_outbox (application_id, org_id, account_number, status, error, lane) values ($1, $2, $3, $4, $5, $6)',
    [s.applicationId, orgId, accountNumber, s.status, s.error, lane])
}

t.test('when several unsent rows exist for one application, only the latest is sent, in id order', async t => {
  const app = await startBareApp(t)
  const { pool, outbox } = app.store
  const client = await pool.connect()
  try {
    await insertStatus(client, { applicationId: '42', status: 'unavailable', error: 'first' }, '7654321', '1234567')
    await insertStatus(client, { applicationId: '43', status: 'available', error: '' }, '7654321', null)
    await insertStatus(client, { applicationId: '42', status: 'available', error: '' }, '7654321', '1234567')
  } finally {
    client.release()
  }
  const batches: StatusMessage[][] = []
  const sent = await outbox.relay(100, async batch => { batches.push(batch) })
  t.equal(sent, 2)
  const [batch] = batches
  t.same(batch.map(m => [m.applicationId, m.status]), [['43', 'available'], ['42', 'available']])
  t.equal(batch[0].accountNumber, null)
  t.equal(await outbox.relay(100, async batch => { batches.push(batch) }), 0, 'nothing left: the older row for 42 is superseded, never sent')
  t.equal(batches.length, 1)
  const { rows } = await pool.query('select application_id, superseded, sent_at is not null as sent from status_outbox order by id')
  t.same(rows, [
    { application_id: '42', superseded: true, sent: false },
    { application_id: '43', superseded: false, sent: true },
    { application_id: '42', superseded: false, sent: true }
  ])
})

t.test('a customer\'s status is sent before a backlog of re-checks\' statuses; each application still gets only its latest', async t => {
  const app = await startBareApp(t)
  const { pool, outbox } = app.store
  const client = await pool.connect()
  try {
    // A wave of re-checks' statuses first (one application twice), then a customer's, then a re-check of
    // the customer's application that an older customer status of it must not overtake.
    for (const id of ['1', '2', '3', '4', '1']) await insertStatus(client, { applicationId: id, status: 'unavailable', error: `recheck ${id}` }, ORG, null, LANES.recheck)
    await insertStatus(client, { applicationId: '9', status: 'available', error: '' }, ORG, null)
    await insertStatus(client, { applicationId: '8', status: 'unavailable', error: 'customer 8' }, ORG, null)
    await insertStatus(client, { applicationId: '8', status: 'available', error: 'recheck 8' }, ORG, null, LANES.recheck)
  } finally {
    client.release()
  }
  const batches: string[][] = []
  const relay = async (): Promise<number> => await outbox.relay(2, async batch => { batches.push(batch.map(m => `${m.applicationId}:${m.error}`)) })
  t.equal(await relay(), 2)
  t.same(batches[0], ['9:', '2:recheck 2'], 'the customer\'s status first, though written after the re-checks\'; 8\'s customer status is superseded by its later re-check')
  while (await relay() > 0);
  t.same(batches.flat(), ['9:', '2:recheck 2', '3:recheck 3', '4:recheck 4', '1:recheck 1', '8:recheck 8'], 'every application\'s latest, once, in lane then id order')
})

t.test('relays racing on one database send each row once, and each application\'s rows in order', async t => {
  const app = await startBareApp(t)
  const { pool, outbox } = app.store
  const apps = 40
  const rounds = 6
  const sent: StatusMessage[] = []
  const inFlight = new Set<string>()
  let overlaps = 0
  let writing = true
  async function relayLoop (): Promise<void> {
    while (true) {
      const n = await outbox.relay(7, async batch => {
        for (const m of batch) {
          if (inFlight.has(m.applicationId)) overlaps++
          inFlight.add(m.applicationId)
        }
        await new Promise(resolve => setTimeout(resolve, Math.random() * 15))
        for (const m of batch) inFlight.delete(m.applicationId)
        sent.push(...batch)
      })
      if (n === 0 && !writing) return
      if (n === 0) await new Promise(resolve => setTimeout(resolve, 5))
    }
  }
  const relays = [relayLoop(), relayLoop(), relayLoop(), relayLoop()]
  // The statuses alternate, so the last one per application is known: round rounds-1.
  for (let round = 0; round < rounds; round++) {
    const client = await pool.connect()
    try {
      for (let a = 0; a < apps; a++) {
        await insertStatus(client, { applicationId: String(a), status: round % 2 === 0 ? 'available' : 'unavailable', error: `round ${round}` }, '7654321', null)
      }
    } finally {
      client.release()
    }
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  writing = false
  await Promise.all(relays)

  const ids = sent.map(m => m.id)
  t.equal(new Set(ids).size, ids.length, 'no row was sent twice')
  t.equal(overlaps, 0, 'no two relays sent messages of one application at the same time')
  const byApp = new Map<string, number[]>()
  for (const m of sent) byApp.set(m.applicationId, [...(byApp.get(m.applicationId) ?? []), m.id])
  const outOfOrder = [...byApp.values()].filter(list => list.some((id, i) => i > 0 && id < list[i - 1]))
  t.same(outOfOrder, [], 'each application\'s rows were sent in id order')
  const last = new Map(sent.map(m => [m.applicationId, m.error]))
  t.equal(last.size, apps)
  t.ok([...last.values()].every(e => e === `round ${rounds - 1}`), 'the latest status of every application was the last sent')
  const { rows } = await pool.query<{ n: number }>('select count(*)::int as n from status_outbox where sent_at is null and not superseded')
  t.equal(rows[0].n, 0, 'nothing left unsent')
})

t.test('a send that fails leaves its rows unsent, and the next relay sends them', async t => {
  const app = await startBareApp(t)
  const { pool, outbox } = app.store
  const client = await pool.connect()
  try {
    await insertStatus(client, { applicationId: '7', status: 'available', error: '' }, '7654321', null)
  } finally {
    client.release()
  }
  await t.rejects(outbox.relay(10, async () => { throw new Error('broker down') }), { message: 'broker down' })
  const again: StatusMessage[] = []
  t.equal(await outbox.relay(10, async batch => { again.push(...batch) }), 1)
  t.same(again.map(m => m.applicationId), ['7'])
})

t.test('a message that cannot be delivered is parked after bounded sends and never holds back another application', async t => {
  const app = await startBareApp(t)
  const { pool, outbox } = app.store
  const client = await pool.connect()
  try {
    for (const id of ['1', '2', '3']) await insertStatus(client, { applicationId: id, status: 'available', error: '' }, '7654321', null)
  } finally {
    client.release()
  }
  const retry = { maxAttempts: 2, delayMs: () => 0 }
  const sent: string[] = []
  // 2 fails for good at once; 3 fails each time (transient): parked after its second send.
  const send = async (batch: StatusMessage[]): Promise<StatusFailure[]> => {
    const failures: StatusFailure[] = []
    for (const m of batch) {
      if (m.applicationId === '2') failures.push({ id: m.id, error: 'invalid header', permanent: true })
      else if (m.applicationId === '3') failures.push({ id: m.id, error: 'answered 500', permanent: false })
      else sent.push(m.applicationId)
    }
    return failures
  }
  t.equal(await outbox.relay(10, send, retry), 3)
  t.same(sent, ['1'], 'the others went out beside the failures')
  t.equal(await outbox.relay(10, send, retry), 1, 'only 3 is sent again: 2 is parked')
  t.equal(await outbox.relay(10, send, retry), 0, 'both parked now')

  const client2 = await pool.connect()
  try {
    await insertStatus(client2, { applicationId: '4', status: 'unavailable', error: 'later' }, '7654321', null)
  } finally {
    client2.release()
  }
  t.equal(await outbox.relay(10, send, retry), 1)
  t.same(sent, ['1', '4'], 'a later message of another application is not held back')

  const parked = await outbox.parked(10, 0)
  t.equal(parked.count, 2)
  t.same(parked.data.map(m => [m.applicationId, m.attempts, m.lastError]), [['2', 1, 'invalid header'], ['3', 2, 'answered 500']])
  t.ok(await outbox.retryParked(parked.data[1].id))
  t.notOk(await outbox.retryParked(parked.data[1].id), 'no longer parked')
  t.equal(await outbox.relay(10, async batch => { sent.push(...batch.map(m => m.applicationId)) }, retry), 1)
  t.same(sent, ['1', '4', '3'], 'the retried message is sent')
  t.equal((await outbox.parked(10, 0)).count, 1)
})

t.test('a parked message is superseded once a later status of its application is decided: it can no longer be queued again over it', async t => {
  const app = await startBareApp(t)
  const { pool, outbox } = app.store
  // The pool runs each insert on a connection of its own, as a ClientBase would.
  const db = pool as unknown as pg.ClientBase
  await insertStatus(db, { applicationId: '42', status: 'unavailable', error: 'old' }, '7654321', null)
  const retry = { maxAttempts: 1, delayMs: () => 0 }
  const sent: string[] = []
  const fail = async (batch: StatusMessage[]): Promise<StatusFailure[]> => batch.map(m => ({ id: m.id, error: 'answered 500', permanent: false }))
  t.equal(await outbox.relay(10, fail, retry), 1)
  const [parked] = (await outbox.parked(10, 0)).data
  t.equal(parked.status, 'unavailable', 'the old status is parked')

  // The application's next status is decided and delivered.
  await insertStatus(db, { applicationId: '42', status: 'available', error: '' }, '7654321', null)
  t.equal(await outbox.relay(10, async batch => { sent.push(...batch.map(m => m.status)) }, retry), 1)
  t.same(sent, ['available'])
  t.equal((await outbox.parked(10, 0)).count, 0, 'the old one left the parked list')

  // An operator who still has its id cannot send the old status over the later one.
  t.notOk(await outbox.retryParked(parked.id))
  t.equal(await outbox.relay(10, async batch => { sent.push(...batch.map(m => m.status)) }, retry), 0, 'nothing more sent')
  const { rows } = await pool.query('select status, superseded, sent_at is not null as sent from status_outbox order by id')
  t.same(rows, [{ status: 'unavailable', superseded: true, sent: false }, { status: 'available', superseded: false, sent: true }])
})

t.test('HTTP status relay: an account number the HTTP client refuses and an application sources-api always fails are parked; the rest is delivered; operators list and retry', async t => {
  const INTERNAL_TOKEN = 'internal-token-outbox-0123456789abcdef'
  const stack = await startStack(t, { env: { STATUS_MAX_ATTEMPTS: '2', INTERNAL_TOKEN } })
  const auth = { authorization: `Bearer ${INTERNAL_TOKEN}` }
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: 'arn:aws:iam::123456789012:role/r' })
  stack.sources.addSource({ sourceId: '8', applicationId: '43', authenticationId: '312', arn: 'arn:aws:iam::123456789013:role/r' })
  stack.sources.addSource({ sourceId: '9', applicationId: '44', authenticationId: '313', arn: 'arn:aws:iam::123456789014:role/r' })
  stack.sources.failPatches.set('43', 500)
  const client = await stack.app.store.pool.connect()
  try {
    // As stored before edge validation refused such account numbers: undici will not send the header.
    await insertStatus(client, { applicationId: '42', status: 'available', error: '' }, ORG, '12\r\n34')
  } finally {
    client.release()
  }
  for (const [app, authn] of [[43, 312], [44, 313]]) {
    const res = await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: app, authentication_id: authn }, { 'webhook-id': `create-${app}` })
    t.equal(res.status, 202)
  }
  await eventually(() => stack.sources.patches.some(p => p.applicationId === '44') ? true : undefined, 20_000, 'the PATCH of 44')
  const list = async (): Promise<any> => (await fetch(`${stack.url}/internal/v1/status-messages/parked`, { headers: auth })).json()
  const parked = await eventually(async () => { const l = await list(); return l.meta.count === 2 ? l : undefined }, 20_000, 'two parked messages')
  t.same(parked.data.map((m: any) => [m.application_id, m.attempts]), [['42', 1], ['43', 2]])
  t.match(parked.data[0].last_error, /not sent: invalid x-rh-sources-account-number header/)
  t.match(parked.data[1].last_error, /answered 500/)
  t.equal((await fetch(`${stack.url}/internal/v1/status-messages/parked`)).status, 401)
  t.ok(stack.logs.some(l => l.includes('status message parked')))
  t.match(await (await fetch(`${stack.url}/metrics`)).text(), /cloudoreg_outbox_parked 2/)

  // sources-api is fixed for 43: an operator sends it again.
  stack.sources.failPatches.delete('43')
  t.equal((await fetch(`${stack.url}/internal/v1/status-messages/${parked.data[1].id as number}/retry`, { method: 'POST', headers: auth })).status, 202)
  t.equal((await fetch(`${stack.url}/internal/v1/status-messages/${parked.data[1].id as number}/retry`, { method: 'POST', headers: auth })).status, 404)
  await eventually(() => stack.sources.patches.some(p => p.applicationId === '43') ? true : undefined, 20_000, 'the PATCH of 43')
  t.equal((await list()).meta.count, 1)
})

t.test('a round whose sink reaches its deadline leaves the messages it did not try unsent and uncounted, for the next round', async t => {
  const app = await startBareApp(t)
  const { pool, outbox } = app.store
  const client = await pool.connect()
  try {
    for (const id of ['1', '2', '3']) await insertStatus(client, { applicationId: id, status: 'available', error: '' }, '7654321', null)
  } finally {
    client.release()
  }
  const api = await startFakeSources({ psk: PSK })
  for (const id of ['1', '2', '3']) api.addSource({ sourceId: id, applicationId: id, authenticationId: `30${id}`, arn: 'arn:aws:iam::123456789012:role/r' })
  const dispatcher = new Agent()
  t.teardown(async () => {
    await dispatcher.close()
    await api.close()
  })
  const sink = httpStatusSink(createSourcesClient({ baseUrl: api.url, psk: PSK, dispatcher, timeoutMs: 2000, attempts: 1 }), false)
  const before = Date.now()
  let given = 0
  // The first message is sent, then the deadline has passed for the other two.
  t.equal(await outbox.relay(10, async (batch, deadline) => {
    given = deadline
    const first = await sink.send(batch.slice(0, 1), deadline) ?? []
    return [...first, ...await sink.send(batch.slice(1), Date.now()) ?? []]
  }), 3)
  t.ok(given > before && given <= Date.now() + 60_000, 'the deadline is within the transaction\'s idle limit')
  t.equal(api.patches.length, 1, 'nothing is sent after the deadline')
  const { rows } = await pool.query('select application_id, sent_at is not null as sent, attempts, parked_at is not null as parked from status_outbox order by id')
  t.same(rows, [
    { application_id: '1', sent: true, attempts: 0, parked: false },
    { application_id: '2', sent: false, attempts: 0, parked: false },
    { application_id: '3', sent: false, attempts: 0, parked: false }
  ], 'the deferred ones are neither sent nor counted as failed sends')
  t.equal(await outbox.relay(10, async (batch, deadline) => await sink.send(batch, deadline)), 2, 'the next round takes them')
  t.same(api.patches.map(p => p.applicationId), ['1', '2', '3'])
})

t.test('a transaction that PostgreSQL ends while it waits fails its work, and the process and the pool carry on', async t => {
  const app = await startBareApp(t)
  const { pool } = app.store
  const uncaught: Error[] = []
  const listener = (err: Error): void => { uncaught.push(err) }
  process.on('uncaughtException', listener)
  t.teardown(() => { process.off('uncaughtException', listener) })
  await t.rejects(withTransaction(pool, async client => {
    await client.query("set local idle_in_transaction_session_timeout = '100ms'")
    await new Promise(resolve => setTimeout(resolve, 1000))
    await client.query('select 1')
  }))
  t.same(uncaught, [], 'no error escaped to the process')
  t.same((await pool.query('select 1 as one')).rows, [{ one: 1 }], 'the pool still answers')
})
