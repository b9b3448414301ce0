import t from 'tap'
import { readFixture } from './helpers/fixtures.js'
import { eventually, getJson, ORG, pushNative, startStack } from './helpers/stack.js'

const create = readFixture('events/app-auth-create.json')
const statusFixture = readFixture('sources-api/status-message.json')
const ROLE = 'arn:aws:iam::123456789012:role/redhat-cloud-meter'

t.test('the availability message reaches platform.sources.status with the documented headers, key and body', async t => {
  const stack = await startStack(t, { kafka: true })
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE })
  stack.sources.addSource({ sourceId: '8', applicationId: '52', authenticationId: '411', arn: 'arn:aws:iam::123456789013:role/r' })
  stack.sts.deny.add('arn:aws:iam::123456789013:role/r')
  t.equal((await pushNative(stack.url, 'ApplicationAuthentication.create', create.body)).status, 202)
  t.equal((await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 52, authentication_id: 411 })).status, 202)

  const messages = await stack.status!.waitFor(m => m.length >= 2, 30_000)
  const available = messages.find(m => JSON.parse(m.value).resource_id === '42')!
  const { traceparent, ...headers } = available.headers
  t.same(headers, statusFixture.kafka_headers)
  const { rows: [event] } = await stack.app.store.pool.query("select traceparent from inbox where body->>'application_id' = '42'")
  t.equal(traceparent, event.traceparent, 'tracing off, the message still carries the trace of the event that decided it')
  t.equal(available.key, ORG)
  t.same(JSON.parse(available.value), statusFixture.available)
  const unavailable = messages.find(m => JSON.parse(m.value).resource_id === '52')!
  t.match(JSON.parse(unavailable.value), { resource_type: 'Application', resource_id: '52', status: 'unavailable', error: /^Could not enable cloud metering\. Error code CG3002\./ })
  t.equal(stack.sources.patches.length, 0, 'with Kafka configured, no PATCH to sources-api')
  // The relay commits "sent" just after the broker's acknowledgement, which the consumer may see first.
  await eventually(async () => {
    const { rows } = await stack.app.store.pool.query('select count(*)::int as n from status_outbox where sent_at is null')
    return rows[0].n === 0 ? true : undefined
  }, 10_000, 'rows to be marked sent once the broker acknowledged them')
  t.pass('rows are marked sent once the broker acknowledged them')
})

t.test('Kafka unreachable at first, then reachable (after a restart): the status still goes out; readiness never depends on Kafka', async t => {
  const stack = await startStack(t, { kafka: true })
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE })
  await stack.kafka!.pause()
  t.teardown(async () => { await stack.kafka!.resume() })

  t.equal((await pushNative(stack.url, 'ApplicationAuthentication.create', create.body)).status, 202, 'pushes are accepted while the broker is down')
  await eventually(async () => (await getJson(`${stack.url}/api/cloudoreg/v1/sources/7`)).body.state === 'registered' ? true : undefined)
  t.equal((await fetch(`${stack.url}/readyz`)).status, 200)
  await new Promise(resolve => setTimeout(resolve, 3000))
  const { rows } = await stack.app.store.pool.query('select count(*)::int as n from status_outbox where sent_at is null')
  t.equal(rows[0].n, 1, 'the message waits in the outbox')
  t.match(await (await fetch(`${stack.url}/metrics`)).text(), /cloudoreg_outbox_unsent 1\b/)

  // Unsent rows survive a restart and go out from the new process.
  await stack.restart({ SHUTDOWN_GRACE_MS: '500' })
  await stack.kafka!.resume()
  const messages = await stack.status!.waitFor(m => m.some(x => JSON.parse(x.value).resource_id === '42'), 60_000)
  t.same(JSON.parse(messages.find(x => JSON.parse(x.value).resource_id === '42')!.value), statusFixture.available)
  await eventually(async () => {
    const r = await stack.app.store.pool.query('select count(*)::int as n from status_outbox where sent_at is null')
    return r.rows[0].n === 0 ? true : undefined
  }, 30_000, 'the outbox row to be marked sent')
})
