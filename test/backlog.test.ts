import t from 'tap'
import { readFileSync } from 'node:fs'
import { createRecord, eventually, inboxStates, ORG, startStack } from './helpers/stack.js'

t.test('a backlog larger than the window is read in pages; memory holds at most INBOX_WINDOW events; idle queues are released', async t => {
  const stack = await startStack(t, { env: { INBOX_WINDOW: '10', CONCURRENCY: '4' } })
  const SOURCES = 120
  const records = []
  for (let i = 0; i < SOURCES; i++) {
    stack.sources.addSource({ sourceId: String(i + 1), applicationId: String(1000 + i), authenticationId: String(2000 + i), arn: `arn:aws:iam::${300000000000 + i}:role/r` })
    records.push(createRecord(i, 1000 + i, 2000 + i))
  }
  stack.rhsm.delayMs = 10
  let peak = 0
  const sampler = setInterval(() => { peak = Math.max(peak, stack.app.scheduler!.stats().queuedEvents) }, 2)
  t.teardown(() => clearInterval(sampler))
  const res = await fetch(`${stack.url}/internal/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ records }) })
  t.equal(res.status, 202)
  await eventually(async () => {
    const rows = await inboxStates(stack)
    return rows.length === SOURCES && rows.every(r => r.state === 'done') ? true : undefined
  }, 60_000, 'the backlog to drain')
  clearInterval(sampler)
  t.ok(peak > 0 && peak <= 10, `peak of ${peak} events in memory for a backlog of ${SOURCES}`)
  t.equal(stack.rhsm.mappings.size, SOURCES)
  await eventually(() => stack.app.scheduler!.stats().queues === 0 ? true : undefined, 5000, 'idle queues to be released')
})

t.test('an event waiting for its retry holds no concurrency slot and blocks only its own source', async t => {
  const stack = await startStack(t, { env: { CONCURRENCY: '1', RETRY_BASE_DELAY_MS: '3000', RETRY_MAX_DELAY_MS: '3000', UPSTREAM_CALL_ATTEMPTS: '1' } })
  stack.sources.addSource({ sourceId: '1', applicationId: '11', authenticationId: '21', arn: 'arn:aws:iam::300000000001:role/r' })
  stack.sources.addSource({ sourceId: '2', applicationId: '12', authenticationId: '22', arn: 'arn:aws:iam::300000000002:role/r' })
  stack.sts.failNext(1, 503)
  const push = async (app: number, auth: number, id: number): Promise<number> => (await fetch(`${stack.url}/internal/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', event_type: 'ApplicationAuthentication.create', 'x-rh-sources-org-id': ORG },
    body: JSON.stringify({ id, application_id: app, authentication_id: auth })
  })).status
  t.equal(await push(11, 21, 1), 202)
  await eventually(async () => (await inboxStates(stack))[0]?.attempts === 1 ? true : undefined, 10_000, 'the first attempt to fail')
  const { rows } = await stack.app.store.pool.query('select next_attempt_at > now() as later from inbox where id = 1')
  t.ok(rows[0].later, 'the next attempt time is stored')
  t.equal(await push(11, 21, 2), 202, 'a later event of the same source')
  t.equal(await push(12, 22, 3), 202, 'an event of another source')
  await eventually(async () => (await inboxStates(stack)).find(r => r.id === 3)?.state === 'done' ? true : undefined, 2500,
    'the other source to be processed while the first waits (CONCURRENCY=1)')
  const states = await inboxStates(stack)
  t.same(states.map(s => s.state), ['pending', 'pending', 'done'], 'the waiting source\'s later event waits behind it')
  await eventually(async () => (await inboxStates(stack)).every(r => r.state === 'done') ? true : undefined, 10_000)
})

t.test('events ending do not read the inbox again once it was read to its end; a push or the poll does', async t => {
  const stack = await startStack(t, { env: { CONCURRENCY: '4' } })
  const EVENTS = 200
  const records = []
  for (let i = 0; i < EVENTS; i++) {
    stack.sources.addSource({ sourceId: String(i + 1), applicationId: String(1000 + i), authenticationId: String(2000 + i), arn: `arn:aws:iam::${300000000000 + i}:role/r` })
    records.push(createRecord(i, 1000 + i, 2000 + i))
  }
  // Count the scheduler's reads (each groups every pending event) from PostgreSQL's own log.
  const pool = stack.app.store.pool
  await pool.query("alter system set log_statement = 'all'")
  await pool.query('select pg_reload_conf()')
  t.teardown(async () => {
    await pool.query('alter system reset log_statement').catch(() => {})
    await pool.query('select pg_reload_conf()').catch(() => {})
  })
  const logFile = `${stack.app.config.DATA_DIR}/pg/server.log`
  const reads = (): number => (readFileSync(logFile, 'utf8').match(/execute lease-candidates/g) ?? []).length
  await eventually(async () => {
    await pool.query('select 1 as log_statement_probe')
    return readFileSync(logFile, 'utf8').includes('log_statement_probe') ? true : undefined
  }, 10_000, 'statement logging')
  const before = reads()
  const started = Date.now()
  const res = await fetch(`${stack.url}/internal/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ records }) })
  t.equal(res.status, 202)
  await eventually(async () => {
    const rows = await inboxStates(stack)
    return rows.length === EVENTS && rows.every(r => r.state === 'done') ? true : undefined
  }, 120_000, 'the events to end')
  const seconds = (Date.now() - started) / 1000
  const count = reads() - before
  // One read on the push, a page or two, then one per poll (every second). Before, every event that
  // ended read again: about one read per event.
  t.ok(count <= 10 + 1.5 * seconds, `${count} inbox reads for ${EVENTS} events in ${seconds.toFixed(1)} s`)
  t.ok(count < EVENTS / 2, `fewer reads (${count}) than half the events`)
})
