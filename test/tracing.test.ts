import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SpanStatusCode } from '@opentelemetry/api'
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import t from 'tap'
import { collectTopic, startMockKafka } from './helpers/kafka.js'
import { pushUntilAcknowledged } from './helpers/process.js'
import { leasesOf, startReplicas } from './helpers/replicas.js'
import { eventually, getJson, identities, pushNative, startStack, STATUS_TOPIC } from './helpers/stack.js'
import type { SpanRecord } from './helpers/traced-server.js'

// The proof of issue 16: an event pushed with a traceparent, its replica SIGKILLed in the middle of
// the event, another replica finishing it; one trace holds both attempts and every upstream call.
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`
const ROLE = 'arn:aws:iam::123456789012:role/redhat-cloud-meter'

function readSpans (file: string): SpanRecord[] {
  let text = ''
  try { text = readFileSync(file, 'utf8') } catch {}
  return text.split('\n').filter(Boolean).map(line => JSON.parse(line) as SpanRecord)
}

t.test('one trace follows an event across a SIGKILLed replica: both attempts, every upstream call, the status message, the STS session name', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'cloudoreg-spans-'))
  const spansFile = join(dir, 'spans.jsonl')
  const kafka = await startMockKafka()
  t.teardown(async () => {
    await kafka.stop()
    rmSync(dir, { recursive: true, force: true })
  })
  const { sources, sts, rhsm, db, replicas } = await startReplicas(t, 2, {
    LEASE_MS: '2000',
    KAFKA_BROKERS: kafka.brokers.join(','),
    STATUS_SINK: 'kafka',
    OTEL_SERVICE_NAME: 'cloudoreg-test',
    CLOUDOREG_TEST_SPANS: spansFile
  }, ['test/helpers/traced-server.ts'])
  const status = await collectTopic(kafka.brokers, STATUS_TOPIC)
  t.teardown(() => status.stop())
  sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE, externalId: 'ext-secret-4242' })
  // The first RHSM call hangs: the replica running the event is killed while it waits.
  rhsm.hangMs = 120_000
  rhsm.failNext(1, 'hang')

  const res = await fetch(`${replicas[0].url}/internal/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', event_type: 'ApplicationAuthentication.create', 'x-rh-sources-org-id': '7654321', traceparent: TRACEPARENT, tracestate: 'vendor=x1' },
    body: JSON.stringify({ id: 1, application_id: 42, authentication_id: 311 })
  })
  t.equal(res.status, 202)

  await eventually(() => rhsm.requests.length >= 1 ? true : undefined, 60_000, 'the first RHSM call')
  const holder = (await Promise.all(replicas.map(async r => ({ r, leases: await leasesOf(db, r.server.child.pid!) })))).find(h => h.leases > 0)!.r
  const survivor = replicas.find(r => r !== holder)!
  const killedPid = holder.server.child.pid!
  holder.server.child.kill('SIGKILL')
  await holder.server.exited

  // The survivor takes the lease over once it expires and finishes the event.
  const message = (await status.waitFor(ms => ms.length >= 1, 60_000))[0]
  t.match(JSON.parse(message.value), { resource_id: '42', status: 'available' })
  t.equal(message.headers.traceparent.split('-')[1], TRACE_ID, 'the status message on Kafka carries the event\'s trace')
  await pushUntilAcknowledged(() => survivor.url, 'Application.update', { id: 42 }, 'flush', 50)

  // STS saw the same session name in both attempts: source and event, within STS's rules.
  const sessions = sts.calls.filter(c => c.action === 'AssumeRole').map(c => c.params.RoleSessionName)
  t.equal(sessions.length, 2, 'AssumeRole in each attempt')
  const { rows: [event] } = await db.query<{ id: string }>("select id from inbox where event_type = 'ApplicationAuthentication.create'")
  t.same(sessions, [`cloudoreg-s7-e${event.id}`, `cloudoreg-s7-e${event.id}`])
  const history = await getJson(`${survivor.url}/api/cloudoreg/v1/sources/7/history`, identities.base64.user_7654321)
  t.match(history.body.timeline.find((e: any) => e.kind === 'event'), { event_id: Number(event.id), trace_id: TRACE_ID, role_session_name: sessions[0], attempts: 1 })

  // sources-api and RHSM received the trace on every call (undici's instrumentation injects it).
  for (const r of [...sources.requests, ...rhsm.requests]) {
    t.equal(r.headers.traceparent?.split('-')[1], TRACE_ID, `${r.method} ${r.path} carries the trace`)
  }

  // Every span either replica wrote for the event is in the one trace.
  const all = await eventually(() => {
    const spans = readSpans(spansFile)
    return spans.some(s => s.phase === 'end' && s.name.startsWith('send ')) ? spans : undefined
  }, 20_000, 'the status publish span')
  const inTrace = all.filter(s => s.traceId === TRACE_ID)
  const ended = inTrace.filter(s => s.phase === 'end')
  const started = inTrace.filter(s => s.phase === 'start')
  const ingest = ended.filter(s => s.name === 'ingest')
  t.equal(ingest.length, 1)
  // The event's own context (here the push's traceparent header) is the ingest's parent; the push request's span (@fastify/otel) too.
  const senderSpan = TRACEPARENT.split('-')[2]
  t.equal(ingest[0].parentSpanId, senderSpan, 'the ingest continues the sender\'s trace')
  t.ok(ended.some(s => s.name === 'request' && s.parentSpanId === senderSpan), 'so does the push request\'s span')
  t.match(ingest[0].attributes, { 'cloudoreg.format': 'sources-native', 'cloudoreg.dedupe': 'stored', 'messaging.message.id': event.id })

  // Attempts: the killed one started (and never ended), the survivor's ended with the outcome; both children of the ingest.
  const attempts = started.filter(s => s.name === 'process ApplicationAuthentication.create')
  t.same(attempts.map(s => s.pid).sort(), [killedPid, survivor.server.child.pid!].sort(), 'one attempt on each replica')
  for (const a of attempts) t.equal(a.parentSpanId, ingest[0].spanId, 'an attempt continues the trace under its ingest')
  const finished = ended.filter(s => s.name === 'process ApplicationAuthentication.create')
  t.equal(finished.length, 1)
  t.match(finished[0].attributes, { 'cloudoreg.outcome': 'registered', 'cloudoreg.source_id': '7', 'cloudoreg.role_session_name': sessions[0], 'messaging.message.id': event.id })

  // Every upstream call of both attempts, as a child of its attempt.
  for (const attempt of attempts) {
    const calls = inTrace.filter(s => s.parentSpanId === attempt.spanId && s.pid === attempt.pid)
    const names = new Set(calls.map(s => s.name))
    t.ok(names.has('STS.AssumeRole') && names.has('STS.GetCallerIdentity'), `STS calls under the attempt on ${attempt.pid}`)
    const http = calls.filter(s => s.attributes['http.request.method'] !== undefined)
    t.ok(http.some(s => String(s.attributes['url.full']).includes('/applications/42')), 'the sources-api GETs')
    t.ok(http.some(s => s.attributes['http.request.method'] === 'POST' && String(s.attributes['url.full']).includes('/cloud_access_providers/AWS/accounts')), 'the RHSM create')
  }
  const assume = ended.filter(s => s.name === 'STS.AssumeRole')
  t.equal(assume.length, 2)
  for (const s of assume) t.match(s.attributes, { 'rpc.system': 'aws-api', 'rpc.method': 'AssumeRole', 'http.response.status_code': 200, 'aws.sts.role_session_name': sessions[0] })
  t.notOk(JSON.stringify(all).includes('ext-secret-4242'), 'no external id in any span')
  const gets = ended.filter(s => s.attributes['http.request.method'] === 'GET')
  t.ok(gets.length >= 2 && gets.every(s => s.attributes['http.response.status_code'] === 200), 'HTTP status on the upstream calls')

  // The outcome's statement (with pg's span beneath) and the status publish continue it.
  const outcome = ended.find(s => s.name === 'record outcome')!
  t.ok(outcome, 'the outcome statement span')
  t.ok(ended.some(s => s.parentSpanId === outcome.spanId && (s.attributes['db.system.name'] ?? s.attributes['db.system']) === 'postgresql'), 'pg spans beneath it')
  const send = ended.find(s => s.name === `send ${STATUS_TOPIC}`)!
  t.equal(send.parentSpanId, outcome.spanId, 'the status publish under the outcome')
  t.equal(message.headers.traceparent.split('-')[2], send.spanId, 'the message names its send span')
})

t.test('tracing off: every log line about an event carries its event, source and trace ids, retries included', async t => {
  const stack = await startStack(t)
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE })
  // One failed attempt (RHSM 503 on each quick retry), so that the dispatcher logs about the event too.
  stack.rhsm.failNext(3, 503)
  t.equal((await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 42, authentication_id: 311 }, { traceparent: TRACEPARENT })).status, 202)
  await eventually(async () => (await getJson(`${stack.url}/api/cloudoreg/v1/sources/7`)).body.state === 'registered' ? true : undefined, 30_000, 'registered')
  const { rows: [event] } = await stack.app.store.pool.query<{ id: string, traceparent: string }>('select id, traceparent from inbox')
  t.equal(event.traceparent, TRACEPARENT, 'tracing off, the sender\'s context is stored as it came')
  const lines = stack.logs.flatMap(chunk => chunk.split('\n')).filter(Boolean).map(l => JSON.parse(l) as Record<string, unknown>)
  const about = lines.filter(l => l.eventId !== undefined)
  t.ok(about.some(l => /will retry/.test(String(l.msg))), 'the failed attempt was logged')
  for (const l of about) t.match(l, { eventId: Number(event.id), sourceId: '7', traceId: TRACE_ID }, String(l.msg))
  const history = await getJson(`${stack.url}/api/cloudoreg/v1/sources/7/history`)
  t.match(history.body.timeline.find((e: any) => e.kind === 'event'), { trace_id: TRACE_ID, role_session_name: `cloudoreg-s7-e${event.id}`, attempts: 2 })
  // The status PATCH carries the event's trace on (no instrumentation adds one while tracing is off).
  const patch = await eventually(() => stack.sources.requests.find(r => r.method === 'PATCH'), 20_000, 'the status PATCH')
  t.equal(patch.headers.traceparent, TRACEPARENT)
  t.equal(patch.headers.tracestate, undefined)
})

t.test('tracing on: an event whose attempts run out is one trace started at ingest, each failed attempt with its error type, then the give-up', async t => {
  const exporter = new InMemorySpanExporter()
  const stack = await startStack(t, { env: { RETRY_MAX_ATTEMPTS: '2', UPSTREAM_CALL_ATTEMPTS: '1' }, spanProcessors: [new SimpleSpanProcessor(exporter)] })
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE })
  // A 503 each time (Throttling would not spend the event's attempts).
  stack.sts.failNext(2, 503)
  t.equal((await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 42, authentication_id: 311 })).status, 202)
  await eventually(async () => (await getJson(`${stack.url}/api/cloudoreg/v1/sources/7`)).body.error?.code === 'CR5000' ? true : undefined, 30_000, 'CR5000')
  const spans = await eventually(() => {
    const all = exporter.getFinishedSpans()
    return all.some(s => s.name === 'give up ApplicationAuthentication.create') ? all : undefined
  }, 10_000, 'the give-up span')
  const ingest = spans.find(s => s.name === 'ingest')!
  const traceId = ingest.spanContext().traceId
  // No context arrived: the trace starts with the push request (@fastify/otel), the ingest beneath it.
  let root = ingest
  for (let parent; (parent = spans.find(s => s.spanContext().spanId === root.parentSpanContext?.spanId)) !== undefined;) root = parent
  t.equal(root.name, 'request', 'the trace starts with the push request')
  t.equal(root.parentSpanContext, undefined)
  t.not(root, ingest)
  const attempts = spans.filter(s => s.name === 'process ApplicationAuthentication.create')
  t.same(attempts.map(s => s.attributes['cloudoreg.attempt']), [1, 2])
  for (const a of attempts) {
    t.equal(a.spanContext().traceId, traceId)
    t.equal(a.status.code, SpanStatusCode.ERROR)
    t.equal(a.attributes['error.type'], 'sts.transient')
  }
  const assume = spans.filter(s => s.name === 'STS.AssumeRole')
  t.equal(assume.length, 2)
  for (const s of assume) t.match(s.attributes, { 'error.type': 'ServiceUnavailable', 'http.response.status_code': 503 })
  const giveUp = spans.find(s => s.name === 'give up ApplicationAuthentication.create')!
  t.match(giveUp.attributes, { 'cloudoreg.error_code': 'CR5000', 'cloudoreg.outcome': 'CR5000' })
  t.equal(giveUp.spanContext().traceId, traceId)
  const history = await getJson(`${stack.url}/api/cloudoreg/v1/sources/7/history`)
  t.equal(history.body.timeline.find((e: any) => e.kind === 'event').trace_id, traceId, 'the history names the trace')
})
