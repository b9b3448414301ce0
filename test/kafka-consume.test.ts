import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Kafka, type IHeaders, type Producer } from 'kafkajs'
import pg from 'pg'
import t from 'tap'
import { startFakeRhsm } from './helpers/fake-rhsm.js'
import { startFakeSources } from './helpers/fake-sources.js'
import { startFakeSts } from './helpers/fake-sts.js'
import { normaliseKafkaRecord, normalisePush } from '../src/ingress/normalise.js'
import { readFixture } from './helpers/fixtures.js'
import { collectTopic, kafkaClientDefaults, kafkaProducerDefaults, kafkaTestLogLevel, startMockKafka } from './helpers/kafka.js'
import { alive, ready, startServer, upstreamEnv, withHooks, type ServerProcess } from './helpers/process.js'
import { recordSecrets } from './helpers/secrets.js'
import { ACCOUNT, eventually, freePort, getJson, identities, inboxStates, ORG, PSK, startStack, type Stack } from './helpers/stack.js'

// Direct Kafka mode (KAFKA_CONSUME=true): the fixture events produced to platform.sources.event-stream
// with the headers sources-api sets, consumed by cloudoreg itself instead of pushed by a bridge.

const EVENT_TOPIC = 'platform.sources.event-stream'
const ROLE = 'arn:aws:iam::123456789012:role/redhat-cloud-meter'
const statusFixture = readFixture('sources-api/status-message.json')
const rhsmFixture = readFixture('rhsm/add-provider-account.json')
const POST = 'POST /v1/cloud_access_providers/AWS/accounts'
const DELETE = 'DELETE /v1/cloud_access_providers/accounts?sourceID=7'

interface Fixture { event_type: string, kafka_key: string, kafka_headers: Record<string, string>, body: Record<string, unknown> }
const fixture = (name: string): Fixture => readFixture(`events/${name}.json`)

interface Teardown { teardown: (fn: () => Promise<void> | void) => void }

async function producerFor (t: Teardown, brokers: string[]): Promise<Producer> {
  const kafka = new Kafka({ ...kafkaClientDefaults, clientId: 'test-sources-api', logLevel: kafkaTestLogLevel, brokers })
  const producer = kafka.producer(kafkaProducerDefaults)
  await producer.connect()
  t.teardown(async () => { await producer.disconnect() })
  return producer
}

interface Produced { partition: number, offset: string }

/** One record as sources-api emits it: JSON value, tenant and identity headers, the org as key. */
async function produce (producer: Producer, message: { key: string, value: string | Buffer, headers: IHeaders }): Promise<Produced> {
  const [meta] = await producer.send({ topic: EVENT_TOPIC, acks: -1, messages: [message] })
  return { partition: meta.partition, offset: meta.baseOffset! }
}

async function produceFixture (producer: Producer, name: string, headers: Record<string, string> = {}): Promise<Produced> {
  const f = fixture(name)
  return produce(producer, { key: f.kafka_key, value: JSON.stringify(f.body), headers: { ...f.kafka_headers, ...headers } })
}

async function settled (stack: Stack, count: number): Promise<Array<{ event_type: string, state: string, outcome: string | null }>> {
  return eventually(async () => {
    const rows = await inboxStates(stack)
    return rows.length >= count && rows.every(r => r.state !== 'pending') ? rows : undefined
  }, 30_000, `${count} events to end`)
}

const rhsmCalls = (stack: Stack): string[] => stack.rhsm.requests.map(r => `${r.method} ${r.path}${r.query ? '?' + r.query : ''}`)
const source7 = async (stack: Stack): Promise<any> => (await getJson(`${stack.url}/api/cloudoreg/v1/sources/7`)).body
const metric = async (stack: Stack, line: RegExp): Promise<number | undefined> => {
  const m = line.exec(await (await fetch(`${stack.url}/metrics`)).text())
  return m === null ? undefined : Number(m[1])
}
const statusMessages = (stack: Stack): Array<{ headers: Record<string, string>, key: string | null, body: any }> =>
  stack.status!.messages.map(m => ({ headers: m.headers, key: m.key, body: JSON.parse(m.value) }))

t.test('a consumed record is the same event as that record pushed in a Strimzi record batch, under a dedupe key of its own', async t => {
  const batch = readFixture('events/record-batch.json').body
  const pushed = normalisePush({ headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify(batch)) }, 'token')
  if (!pushed.ok) throw new Error(pushed.detail)
  batch.records.forEach((r: any, i: number) => {
    const headers: Record<string, Buffer> = {}
    for (const h of r.headers) headers[h.key] = Buffer.from(h.value, 'base64')
    const consumed = normaliseKafkaRecord({ topic: r.topic, partition: r.partition, offset: String(r.offset), value: Buffer.from(JSON.stringify(r.value)), headers })
    const { dedupeKey, ...event } = pushed.events[i]
    t.same(consumed, { ok: true, event: { ...event, dedupeKey: dedupeKey.replace(/^push-token:/, 'consumer:') }, notes: [] }, `record ${i}`)
  })
  const f = fixture('app-auth-create')
  const base = { topic: EVENT_TOPIC, partition: 2, offset: '17', value: Buffer.from(JSON.stringify(f.body)) }
  t.match(normaliseKafkaRecord({ ...base, headers: f.kafka_headers }),
    { ok: true, event: { eventType: f.event_type, orgId: ORG, accountNumber: '1234567', dedupeKey: new RegExp(`^consumer:kafka:${EVENT_TOPIC}/2/17#`), deliveryId: `${EVENT_TOPIC}/2/17`, dedupeTtlMs: null } },
    'string header values, as some clients give them')
  t.match(normaliseKafkaRecord({ ...base, headers: { ...f.kafka_headers, event_type: [Buffer.from('Records.update'), Buffer.from(f.event_type)] } }),
    { ok: true, event: { eventType: f.event_type } }, 'a repeated header: the last one wins')
  t.same(normaliseKafkaRecord({ ...base, value: null, headers: f.kafka_headers }), { ok: false, detail: 'value is empty' })
  t.match(normaliseKafkaRecord({ ...base, value: Buffer.from('[1]'), headers: f.kafka_headers }), { ok: false, detail: /must be a JSON object/ })
  t.match(normaliseKafkaRecord({ ...base, headers: { event_type: f.event_type } }), { ok: false, detail: /no org id/ })
})

t.test('fixture events consumed from the event topic: the same outcomes as pushed ones', async t => {
  const stack = await startStack(t, { kafka: true, env: { KAFKA_CONSUME: 'true' } })
  const producer = await producerFor(t, stack.kafka!.brokers)
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE, externalId: 'ext' })

  // The wizard order: only the link is acted on.
  await produceFixture(producer, 'application-create')
  const create = await produceFixture(producer, 'app-auth-create')
  await produceFixture(producer, 'authentication-create')
  const rows = await settled(stack, 3)
  t.same(rows.map(r => [r.event_type, r.state]), [['Application.create', 'ignored'], ['ApplicationAuthentication.create', 'done'], ['Authentication.create', 'ignored']])
  t.match(await source7(stack), { state: 'registered', mapped: true, availability_status: 'available', org_id: ORG, account_number: '1234567', aws_account_id: '123456789012', role_arn: ROLE })
  t.same(rhsmCalls(stack), [POST])
  t.same(stack.rhsm.requests[0].body, rhsmFixture.request_body)
  t.equal(stack.rhsm.requests[0].headers['x-rhsmapi-accountid'], ORG)
  const [available] = await stack.status!.waitFor(m => m.length >= 1, 30_000)
  const { traceparent, ...headers } = available.headers
  t.same(headers, statusFixture.kafka_headers, 'the availability message has the documented headers')
  t.match(traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/, 'and the trace of the event that decided it')
  t.equal(available.key, ORG)
  t.same(JSON.parse(available.value), statusFixture.available)

  // The inbox keeps the record's topic/partition/offset as its delivery id...
  const { rows: stored } = await stack.app.store.pool.query("select delivery_id from inbox where event_type = 'ApplicationAuthentication.create'")
  t.same(stored, [{ delivery_id: `${EVENT_TOPIC}/${create.partition}/${create.offset}` }])
  // ...and a push cannot stand in for it: in direct Kafka mode without a push credential the push
  // route is off (a push would otherwise be a way in for forged events beside the consumer).
  const record = readFixture('events/record-batch.json').body.records[0]
  const pushed = await fetch(`${stack.url}/internal/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ records: [{ ...record, partition: create.partition, offset: Number(create.offset) }] })
  })
  t.equal(pushed.status, 404, 'no push route beside the consumer')

  // An ARN edit to another AWS account moves the mapping and reports available again.
  stack.sources.authentications.get('311')!.username = 'arn:aws:iam::210987654321:role/moved'
  await produceFixture(producer, 'authentication-update')
  await settled(stack, 4)
  t.same(rhsmCalls(stack), [POST, DELETE, POST])
  t.match(await source7(stack), { state: 'registered', aws_account_id: '210987654321', mapped: true })

  // Pause: nothing verified or reported; unpause: verified and reported.
  stack.sources.setPaused('42', true)
  await produceFixture(producer, 'application-pause')
  await settled(stack, 5)
  t.match(await source7(stack), { state: 'paused', mapped: true })
  stack.sources.setPaused('42', false)
  await produceFixture(producer, 'application-unpause')
  await settled(stack, 6)
  t.match(await source7(stack), { state: 'registered' })
  await stack.status!.waitFor(m => m.length >= 3, 30_000)

  // The deletion: the mapping removed once, nothing reported; the noise sources-api emits is ignored.
  stack.sources.removeApplication('42')
  for (const name of ['app-auth-destroy', 'application-destroy', 'source-destroy', 'authentication-destroy', 'application-update', 'records-update']) {
    await produceFixture(producer, name)
  }
  const end = await settled(stack, 12)
  t.same(end.slice(6).map(r => [r.event_type, r.state]), [
    ['ApplicationAuthentication.destroy', 'done'], ['Application.destroy', 'done'], ['Source.destroy', 'done'],
    // Authentication.destroy runs (issue 14): here the authentication still exists in sources-api, a no-op.
    ['Authentication.destroy', 'done'], ['Application.update', 'ignored'], ['Records.update', 'ignored']
  ])
  t.same(rhsmCalls(stack), [POST, DELETE, POST, 'DELETE /v1/cloud_access_providers/accounts?sourceID=7'])
  t.match(await source7(stack), { state: 'removed', mapped: false })

  // A late re-emitted create does not map a destroyed application again.
  await produceFixture(producer, 'app-auth-create')
  t.equal((await settled(stack, 13)).at(-1)!.outcome, 'application was destroyed; not mapped again')
  t.equal(rhsmCalls(stack).length, 4)
  await stack.status!.waitFor(m => m.length >= 3, 30_000)
  await new Promise(resolve => setTimeout(resolve, 1000))
  t.same(statusMessages(stack).map(m => [m.body.resource_id, m.body.status]), [['42', 'available'], ['42', 'available'], ['42', 'available']],
    'available after the create, the ARN edit and the unpause; nothing for pause or deletion')

  t.equal(await metric(stack, /cloudoreg_kafka_records_total\{outcome="stored"\} (\d+)/), 13)
  t.equal(await metric(stack, /cloudoreg_kafka_records_total\{outcome="skipped"\} (\d+)/), 0)
  t.equal(await metric(stack, /cloudoreg_events_received_total\{type="ApplicationAuthentication.create"\} (\d+)/), 2)
  t.ok((await metric(stack, /cloudoreg_kafka_consumer_partitions (\d+)/))! > 0, 'partitions assigned')
  t.equal(stack.sources.patches.length, 0, 'status went to Kafka, not PATCH')
})

t.test('records that can never be stored are logged without secrets and skipped; offsets hold across restarts; a new group re-reads as duplicates', async t => {
  const stack = await startStack(t, { kafka: true, env: { KAFKA_CONSUME: 'true', STATUS_SINK: 'http' } })
  const producer = await producerFor(t, stack.kafka!.brokers)
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE })
  const f = fixture('app-auth-create')
  const identity = f.kafka_headers['x-rh-identity']
  const noOrgIdentity = Buffer.from(JSON.stringify({ identity: { type: 'User', user: { username: 'someone', password: 'hunter2-in-identity' } } })).toString('base64')
  recordSecrets(['s3cr3t-in-a-broken-body', 'hunter2-in-identity', noOrgIdentity])

  // All on the org's partition, in this order: the good record after the bad ones must not wait.
  const badJson = await produce(producer, { key: ORG, value: '{"password":"s3cr3t-in-a-broken-body"', headers: f.kafka_headers })
  const noOrg = await produce(producer, {
    key: ORG,
    value: JSON.stringify(f.body),
    headers: { event_type: f.event_type, 'x-rh-identity': noOrgIdentity, encoding: 'json' }
  })
  const tombstone = await produce(producer, { key: ORG, value: Buffer.alloc(0), headers: f.kafka_headers })
  await produceFixture(producer, 'app-auth-create')
  await settled(stack, 1)
  t.equal((await source7(stack)).state, 'registered', 'the good record after them was processed')
  t.equal((await inboxStates(stack)).length, 1, 'only the good record is stored')

  const skippedLines = stack.logs.map(l => JSON.parse(l)).filter(l => l.msg === 'Kafka record skipped: it can never be stored')
  t.same(skippedLines.map(l => l.offset), [badJson.offset, noOrg.offset, tombstone.offset], 'each skipped record is logged with its offset')
  t.match(skippedLines.map(l => l.reason), [/not valid JSON/, /no org id/, /empty/])
  const all = stack.logs.join('')
  for (const secret of ['s3cr3t-in-a-broken-body', 'hunter2-in-identity', noOrgIdentity, identity]) {
    t.notOk(all.includes(secret), `logs do not hold ${secret.slice(0, 12)}…`)
  }
  t.equal(await metric(stack, /cloudoreg_kafka_records_total\{outcome="skipped"\} (\d+)/), 3)

  // Restart on the same group: everything was committed, nothing is read again.
  await stack.restart({ KAFKA_CONSUME: 'true', STATUS_SINK: 'http' })
  await produceFixture(producer, 'app-auth-create')
  await settled(stack, 2)
  t.equal(await metric(stack, /cloudoreg_kafka_records_total\{outcome="stored"\} (\d+)/), 1, 'only the new record')
  t.equal(await metric(stack, /cloudoreg_kafka_records_total\{outcome="duplicate"\} (\d+)/), 0, 'committed offsets are not read again')
  t.equal(await metric(stack, /cloudoreg_kafka_records_total\{outcome="skipped"\} (\d+)/), 0, 'the bad records were committed past')

  // A new group starts from the oldest record: all six are read again, and all are duplicates or skipped.
  await stack.restart({ KAFKA_CONSUME: 'true', STATUS_SINK: 'http', KAFKA_GROUP_ID: 'cloudoreg-other' })
  await eventually(async () => (await metric(stack, /cloudoreg_kafka_records_total\{outcome="duplicate"\} (\d+)/)) === 2 ? true : undefined,
    30_000, 'the new group to read the topic again')
  t.equal(await metric(stack, /cloudoreg_kafka_records_total\{outcome="stored"\} (\d+)/), 0)
  t.equal(await metric(stack, /cloudoreg_kafka_records_total\{outcome="skipped"\} (\d+)/), 3)
  t.equal((await inboxStates(stack)).length, 2, 'nothing stored twice')
  t.same(rhsmCalls(stack), [POST], 'nothing processed twice')
})

t.test('poison records never stall the partition: what PostgreSQL would refuse is skipped, logged and counted; the rest of the batch is stored', async t => {
  const stack = await startStack(t, { kafka: true, env: { KAFKA_CONSUME: 'true', STATUS_SINK: 'http' } })
  const producer = await producerFor(t, stack.kafka!.brokers)
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE })
  const f = fixture('app-auth-create')
  const record = (value: string, headers: Record<string, string> = {}): { key: string, value: string, headers: IHeaders } =>
    ({ key: ORG, value, headers: { ...f.kafka_headers, ...headers } })

  // All on the org's partition, in this order: the good record after them must not wait.
  const skipped = [
    await produce(producer, record('{"application_id":42,"authentication_id":311,"name":"a\\u0000b"}')),
    await produce(producer, record('{"application_id":42,"authentication_id":311,"name":"\\udead"}')),
    await produce(producer, record(JSON.stringify(f.body), { 'x-rh-sources-org-id': `${ORG}\u0000` })),
    await produce(producer, record('{"application_id":1e21,"authentication_id":311}'))
  ]
  // Wider than the old depth check could spread (RangeError: a crash loop); storable, so stored.
  await produce(producer, record(`{"wide":[${Array(300_000).fill(0).join(',')}]}`, { event_type: 'Records.update' }))
  await produce(producer, record(JSON.stringify({ id: 7 }), { event_type: 'Records.update', 'x-rh-sources-account-number': `${ACCOUNT}\r\nX-Evil: 1` }))

  // A refusal nobody foresaw (a constraint on the stored row) among good records of one batch: only it is skipped.
  await stack.app.store.pool.query("alter table inbox add constraint refused_by_test check (not (body ? 'refused_by_test'))")
  const [meta] = await producer.send({
    topic: EVENT_TOPIC,
    acks: -1,
    messages: [{ n: 1 }, { n: 2, refused_by_test: true }, { n: 3 }].map(body => record(JSON.stringify(body), { event_type: 'Records.update' }))
  })
  skipped.push({ partition: meta.partition, offset: String(BigInt(meta.baseOffset!) + 1n) })
  await produceFixture(producer, 'app-auth-create')
  await eventually(async () => (await source7(stack)).state === 'registered' ? true : undefined, 30_000, 'the good record after the poison to be processed')
  await stack.app.store.pool.query('alter table inbox drop constraint refused_by_test')

  const { rows } = await stack.app.store.pool.query("select event_type, account_number, body->'n' as n, jsonb_array_length(body->'wide') as wide from inbox order by id")
  t.same(rows.map(r => [r.event_type, r.account_number, r.n, r.wide]), [
    ['Records.update', ACCOUNT, null, 300_000],
    ['Records.update', ACCOUNT, null, null], // the account number of its x-rh-identity, not the header's
    ['Records.update', ACCOUNT, 1, null],
    ['Records.update', ACCOUNT, 3, null],
    ['ApplicationAuthentication.create', ACCOUNT, null, null]
  ], 'the wide record, the record without its account number, the good records of the refused one\'s batch, and the create are stored')

  const lines = stack.logs.map(l => JSON.parse(l))
  const skippedLines = lines.filter(l => l.msg === 'Kafka record skipped: it can never be stored')
  t.same(skippedLines.map(l => l.offset), skipped.map(s => s.offset), 'each skipped record is logged with its offset')
  t.match(skippedLines.map(l => l.reason), [/value\.name contains a NUL/, /value\.name contains a lone UTF-16 surrogate/, /x-rh-sources-org-id is not a valid org id/,
    /body\.application_id is not an id/, /the database refuses this data \(SQLSTATE 23514/])
  t.match(lines.filter(l => l.msg === 'Kafka record stored without what it could not use').map(l => l.notes), [[/x-rh-sources-account-number is not an account number/]])
  t.notOk(stack.logs.join('').includes('X-Evil'), 'the refused account number is not logged')
  t.equal(await metric(stack, /cloudoreg_kafka_records_total\{outcome="skipped"\} (\d+)/), 5)
  t.equal(await metric(stack, /cloudoreg_kafka_records_total\{outcome="stored"\} (\d+)/), 5)
  t.comment(`poison records skipped: ${skippedLines.length}; good records stored after them: ${rows.length}`)
})

t.test('a broker that cannot be reached does not stop the service; consuming starts once it answers', async t => {
  const stack = await startStack(t, { kafka: true, env: { KAFKA_CONSUME: 'true', STATUS_SINK: 'http' } })
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE })
  // No broker at all on this address: connection refused, retried in the background.
  await stack.restart({ KAFKA_CONSUME: 'true', STATUS_SINK: 'http', KAFKA_BROKERS: `127.0.0.1:${await freePort()}`, SHUTDOWN_GRACE_MS: '500' })
  t.equal((await fetch(`${stack.url}/readyz`)).status, 200, 'ready without Kafka')
  await eventually(() => stack.logs.some(l => l.includes('Kafka consumer could not start')) ? true : undefined, 30_000, 'the start failure to be logged')
  t.equal((await fetch(`${stack.url}/healthz`)).status, 200, 'still alive after the failure')

  // A stalled cluster at start: the consumer waits, then consumes.
  await stack.kafka!.pause()
  t.teardown(async () => { await stack.kafka!.resume() })
  await stack.restart({ KAFKA_CONSUME: 'true', STATUS_SINK: 'http', SHUTDOWN_GRACE_MS: '500' })
  t.equal((await fetch(`${stack.url}/readyz`)).status, 200, 'ready while the broker hangs')
  await new Promise(resolve => setTimeout(resolve, 2000))
  await stack.kafka!.resume()
  const producer = await producerFor(t, stack.kafka!.brokers)
  await produceFixture(producer, 'app-auth-create')
  await eventually(async () => (await source7(stack)).state === 'registered' ? true : undefined, 60_000, 'the record to be consumed and processed')
  t.pass('consumed after the broker came back')

  // The inbox failing: the batch's offset is not committed; the records are read again and stored once it is back.
  const append = stack.app.store.inbox.append
  let calls = 0
  stack.app.store.inbox.append = async events => {
    if (calls++ < 2) throw new Error('the database is unavailable (test)')
    return append(events)
  }
  await produceFixture(producer, 'app-auth-create')
  await settled(stack, 2)
  t.equal(calls, 3, 'two failed appends, then the batch was read again and stored')
  t.equal((await inboxStates(stack)).length, 2, 'stored once')
  t.ok(stack.logs.some(l => l.includes('storing consumed Kafka records failed')), 'the failure is logged')
})

// "No record lost when the process is killed between the inbox commit and the offset commit":
// the real server process, records produced while it consumes, SIGKILLed at the exact window
// (by a fault hook that test/helpers/server-with-hooks.ts injects through buildApp's options) and at random moments.
const SOURCES = Number(process.env.KAFKA_CRASH_SOURCES ?? 100)
const PER_SOURCE = 3
const TOTAL = SOURCES * PER_SOURCE

t.test(`${TOTAL} records, the consumer SIGKILLed between inbox and offset commits and at random: every record stored exactly once`, async t => {
  const [sources, sts, rhsm, kafka] = await Promise.all([startFakeSources({ psk: PSK }), startFakeSts(), startFakeRhsm(), startMockKafka()])
  const dataDir = mkdtempSync(join(tmpdir(), 'cloudoreg-kafka-crash-'))
  const app = (i: number): string => String(20_000 + i)
  const auth = (i: number, k: number): string => String(200_000 + i * 10 + k)
  const account = (i: number, k: number): string => String(400_000_000_000 + i * 10 + k)
  for (let i = 0; i < SOURCES; i++) {
    sources.addSource({ sourceId: String(i + 1), applicationId: app(i), authenticationId: auth(i, 0), arn: `arn:aws:iam::${account(i, 0)}:role/r` })
    for (let k = 1; k < PER_SOURCE; k++) sources.addRole(auth(i, 0), auth(i, k), `arn:aws:iam::${account(i, k)}:role/r`)
  }
  const [port, pgPort] = [await freePort(), await freePort()]
  const url = `http://127.0.0.1:${port}`
  const env = {
    DATA_DIR: dataDir,
    PORT: String(port),
    HOST: '127.0.0.1',
    EMBEDDED_PG_PORT: String(pgPort),
    ...upstreamEnv({ sources, sts, rhsm }),
    KAFKA_BROKERS: kafka.brokers.join(','),
    KAFKA_CONSUME: 'true',
    STATUS_SINK: 'http',
    LOG_LEVEL: 'info'
  }
  const runs: ServerProcess[] = []
  const start = (entry?: string[]): ServerProcess => {
    const server = startServer(env, entry)
    runs.push(server)
    return server
  }
  t.teardown(async () => {
    const last = runs.at(-1)
    if (last !== undefined && last.child.exitCode === null && last.child.signalCode === null) {
      last.child.kill('SIGTERM')
      await last.exited
    }
    const pid = readPid(dataDir)
    if (pid !== null && alive(pid)) process.kill(pid, 'SIGKILL')
    await kafka.stop()
    await Promise.all([sources.close(), sts.close(), rhsm.close()])
    rmSync(dataDir, { recursive: true, force: true })
  })

  // sources-api's side: records keyed by source (spread over the topic's partitions, each
  // source's in order), produced in small chunks for as long as the kills go on.
  const producer = await producerFor(t, kafka.brokers)
  const produced = new Map<number, Produced>()
  let producedCount = 0
  const producing = (async () => {
    const CHUNK = 10
    for (let seq = 0; seq < TOTAL; seq += CHUNK) {
      // One send per chunk: a record batch per partition, so consumed batches hold several records.
      const chunk = Array.from({ length: Math.min(CHUNK, TOTAL - seq) }, (_, j) => {
        const n = seq + j
        const [i, k] = [n % SOURCES, Math.floor(n / SOURCES)]
        return {
          n,
          message: {
            key: String(i + 1),
            value: JSON.stringify({ id: n, application_id: Number(app(i)), authentication_id: Number(auth(i, k)), tenant: '1234567' }),
            headers: { event_type: 'ApplicationAuthentication.create', 'x-rh-sources-org-id': ORG, 'x-rh-identity': identities.base64.system_7654321, encoding: 'json' }
          }
        }
      })
      await producer.send({ topic: EVENT_TOPIC, acks: -1, messages: chunk.map(c => c.message) })
      producedCount += chunk.length
      await new Promise(resolve => setTimeout(resolve, 500))
    }
  })()

  const batchesOf = (s: ServerProcess): Array<{ partition: number, offsets: string, stored: number, duplicates: number }> =>
    s.output().split('\n').filter(l => l.includes('"Kafka records stored"')).map(l => JSON.parse(l))
  const kills: string[] = []
  const hookKills: Array<{ partition: number, first: string, stored: number }> = []

  async function killedByHook (server: ServerProcess): Promise<void> {
    const timeout = setTimeout(() => { server.child.kill('SIGKILL') }, 90_000)
    await server.exited
    clearTimeout(timeout)
    const line = server.output().split('\n').find(l => l.includes('test fault: killing the process'))
    t.ok(line, 'the process killed itself between an inbox commit and its offset commit')
    if (line === undefined) return
    const fault = JSON.parse(line)
    hookKills.push({ partition: fault.partition, first: fault.offsets.split('-')[0], stored: fault.stored })
    kills.push(`fault hook (${String(server.child.signalCode)}) after the inbox commit of partition ${fault.partition} offsets ${fault.offsets} (${fault.stored} new)`)
  }

  const began = Date.now()
  const marks: string[] = []
  const mark = (what: string): void => { marks.push(`${what} ${((Date.now() - began) / 1000).toFixed(1)} s`) }
  // Run 1: killed by the fault hook in the window, at its third batch with new records.
  let server = start(withHooks('--kill-after-inbox-commit', '3'))
  await killedByHook(server)

  mark('run 1 killed')
  // Run 2: SIGKILLed from outside at a random moment while it consumes.
  server = start()
  await ready(url)
  await eventually(() => batchesOf(server).length > 0 ? true : undefined, 60_000, 'run 2 to consume')
  await new Promise(resolve => setTimeout(resolve, Math.floor(Math.random() * 400)))
  server.child.kill('SIGKILL')
  await server.exited
  kills.push(`SIGKILL at random after ${batchesOf(server).length} committed batches (${producedCount} records produced so far)`)

  mark('run 2 killed')
  // Run 3: to the end.
  server = start()
  await ready(url)
  await producing
  // Where each record landed, read back from the topic itself.
  const topic = await collectTopic(kafka.brokers, EVENT_TOPIC)
  const landed = await topic.waitFor(m => m.length >= TOTAL, 60_000)
  await topic.stop()
  for (const m of landed) produced.set(JSON.parse(m.value).id, { partition: m.partition, offset: m.offset })
  t.equal(produced.size, TOTAL, 'every record produced once')

  const password = readFileSync(join(dataDir, 'pg-password'), 'utf8').trim()
  const db = new pg.Client({ connectionString: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${pgPort}/postgres` })
  await db.connect()
  t.teardown(() => db.end())
  await eventually(async () => {
    const { rows } = await db.query('select count(*)::int as n, count(*) filter (where state = \'pending\')::int as pending from inbox')
    return rows[0].n >= TOTAL && rows[0].pending === 0 ? true : undefined
  }, 60_000, 'every record stored and processed').catch((err: Error) => t.fail(err.message))
  mark('all stored and processed')

  // Exactly once in the inbox: one row per produced record, with that record's topic/partition/offset.
  const { rows } = await db.query('select delivery_id, (body->>\'id\')::int as seq, state from inbox order by id')
  t.equal(rows.length, TOTAL, 'as many inbox rows as records produced')
  const bySeq = new Map<number, string[]>()
  for (const r of rows) bySeq.set(r.seq, [...(bySeq.get(r.seq) ?? []), r.delivery_id])
  let lost = 0
  let twice = 0
  let wrongId = 0
  for (const [seq, p] of produced) {
    const ids = bySeq.get(seq) ?? []
    if (ids.length === 0) lost++
    if (ids.length > 1) twice++
    if (ids.length === 1 && ids[0] !== `${EVENT_TOPIC}/${p.partition}/${p.offset}`) wrongId++
  }
  t.equal(lost, 0, 'no record lost')
  t.equal(twice, 0, 'no record stored twice')
  t.equal(wrongId, 0, 'each row carries its record\'s topic/partition/offset')
  t.same([...new Set(rows.map(r => r.state))], ['done'], 'every record processed')

  // Each hook kill's batch was in the inbox before the kill, so it was read again as duplicates.
  const allBatches = runs.flatMap((s, run) => batchesOf(s).map(b => ({ ...b, run })))
  const reRead = allBatches.reduce((n, b) => n + b.duplicates, 0)
  for (const k of hookKills) {
    const again = allBatches.find(b => b.partition === k.partition && b.offsets.split('-')[0] === k.first && b.duplicates >= k.stored)
    t.ok(again, `partition ${k.partition} was read again from offset ${k.first}: the offset commit never happened, the inbox commit had`)
  }
  t.ok(reRead > 0, `${reRead} records read again after restarts, all recognised as duplicates`)

  // Processing after the crashes: per-source order held, each source mapped to its last account.
  const posts = new Map<string, string[]>()
  for (const r of rhsm.requests) {
    if (r.method !== 'POST') continue
    const [item] = r.body as Array<{ id: string, sourceId: string }>
    posts.set(item.sourceId, [...(posts.get(item.sourceId) ?? []), item.id])
  }
  let violations = 0
  for (let i = 0; i < SOURCES; i++) {
    const seen = posts.get(String(i + 1)) ?? []
    const collapsed = seen.filter((a, j) => j === 0 || a !== seen[j - 1])
    if (JSON.stringify(collapsed) !== JSON.stringify(Array.from({ length: PER_SOURCE }, (_, k) => account(i, k)))) violations++
  }
  t.equal(violations, 0, 'per-source order held')
  let wrongMapping = 0
  for (let i = 0; i < SOURCES; i++) if (rhsm.mappings.get(String(i + 1))?.awsAccountId !== account(i, PER_SOURCE - 1)) wrongMapping++
  t.equal(wrongMapping, 0, 'each source mapped to its last account')

  t.comment(`kills: ${kills.join('; ')}`)
  t.comment(`timeline: ${marks.join(', ')}`)
  t.comment(`${TOTAL} records, ${SOURCES} sources, ${runs.length} server runs: ${allBatches.length} committed batches, ${reRead} records read again as duplicates`)
})

function readPid (dataDir: string): number | null {
  try {
    return Number(readFileSync(join(dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0])
  } catch {
    return null
  }
}
