import t from 'tap'
import { eventually, inboxStates, ORG, startStack, type Stack } from './helpers/stack.js'

const SOURCES = 50
const EVENTS_PER_SOURCE = 3

/** Source i's k-th event links authentication `auth(i, k)`, whose role is in AWS account `account(i, k)`. */
const app = (i: number): number => 5000 + i
const auth = (i: number, k: number): number => 10_000 + i * 10 + k
const account = (i: number, k: number): string => String(200_000_000_000 + i * 10 + k)

function arrange (stack: Stack): void {
  for (let i = 0; i < SOURCES; i++) {
    stack.sources.addSource({ sourceId: String(i + 1), applicationId: String(app(i)), authenticationId: String(auth(i, 0)), arn: `arn:aws:iam::${account(i, 0)}:role/r` })
    const first = stack.sources.authentications.get(String(auth(i, 0)))!
    for (let k = 1; k < EVENTS_PER_SOURCE; k++) {
      stack.sources.authentications.set(String(auth(i, k)), { ...first, id: String(auth(i, k)), username: `arn:aws:iam::${account(i, k)}:role/r` })
    }
  }
}

/**
 * Rounds of one event per source, in one CloudEvents batch, so that the
 * sources' events interleave in the inbox and all wait there at once.
 */
async function pushRounds (stack: Stack, rounds: number[]): Promise<void> {
  const batch = []
  for (const k of rounds) {
    for (let i = 0; i < SOURCES; i++) {
      batch.push({
        specversion: '1.0',
        id: `partition:0/offset:${k * 1000 + i}`,
        source: 'ordering-test',
        type: 'dev.knative.kafka.event',
        data: { id: k, application_id: app(i), authentication_id: auth(i, k) },
        kafkaheadereventtype: 'ApplicationAuthentication.create',
        kafkaheaderxrhsourcesorgid: ORG
      })
    }
  }
  const res = await fetch(`${stack.url}/internal/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/cloudevents-batch+json' },
    body: JSON.stringify(batch)
  })
  if (res.status !== 202) throw new Error(`push answered ${res.status}`)
}

/** The AWS accounts RHSM was asked to map, per source, in the order the requests arrived. */
function rhsmOrder (stack: Stack): Map<string, string[]> {
  const order = new Map<string, string[]>()
  for (const r of stack.rhsm.requests) {
    if (r.method !== 'POST') continue
    const [item] = r.body as Array<{ id: string, sourceId: string }>
    order.set(item.sourceId, [...(order.get(item.sourceId) ?? []), item.id])
  }
  return order
}

function jitter (stack: Stack): void {
  stack.sources.jitterMs = 15
  stack.sts.jitterMs = 15
  stack.rhsm.jitterMs = 25
}

async function allEnded (stack: Stack, count: number): Promise<void> {
  await eventually(async () => {
    const rows = await inboxStates(stack)
    return rows.length === count && rows.every(r => r.state === 'done') ? true : undefined
  }, 60_000, `${count} events to end`)
}

t.test('50 sources with interleaved events and random upstream delays: per-source order kept, sources overlap', async t => {
  // More slots than events: nothing but the per-source queue stands between a source's events.
  const stack = await startStack(t, { env: { CONCURRENCY: '200' } })
  arrange(stack)
  jitter(stack)
  await pushRounds(stack, [0, 1, 2])
  await allEnded(stack, SOURCES * EVENTS_PER_SOURCE)

  const order = rhsmOrder(stack)
  let violations = 0
  for (let i = 0; i < SOURCES; i++) {
    const expected = Array.from({ length: EVENTS_PER_SOURCE }, (_, k) => account(i, k))
    if (JSON.stringify(order.get(String(i + 1))) !== JSON.stringify(expected)) violations++
  }
  t.equal(violations, 0, 'every source saw its events in push order, each once')

  // Different sources ran at the same time: some source's event began before another's ended.
  const windows = new Map<string, { first: number, last: number }>()
  for (const r of stack.sources.requests) {
    const m = /^\/api\/sources\/v3\.1\/applications\/(\d+)$/.exec(r.path)
    if (m) windows.set(m[1], { first: Math.min(r.at, windows.get(m[1])?.first ?? Infinity), last: 0 })
  }
  for (const r of stack.rhsm.requests) {
    if (r.method !== 'POST') continue
    const [item] = r.body as Array<{ sourceId: string }>
    const w = windows.get(String(app(Number(item.sourceId) - 1)))
    if (w) w.last = Math.max(w.last, r.at)
  }
  const spans = [...windows.values()].sort((a, b) => a.first - b.first)
  const overlapping = spans.some((s, i) => i > 0 && s.first < spans[i - 1].last)
  t.ok(overlapping, 'sources were processed concurrently')
})

t.test('a server stopped and restarted mid-stream finishes every event once', async t => {
  const stack = await startStack(t, { env: { CONCURRENCY: '4' } })
  arrange(stack)
  stack.rhsm.delayMs = 20
  await pushRounds(stack, [0, 1])
  await eventually(async () => (await inboxStates(stack)).filter(r => r.state === 'done').length >= 20 ? true : undefined)
  await stack.restart()
  const before = (await inboxStates(stack)).filter(r => r.state === 'done').length
  t.ok(before < SOURCES * 2, `restarted with ${SOURCES * 2 - before} events unfinished`)
  await pushRounds(stack, [2])
  await allEnded(stack, SOURCES * 3)

  const order = rhsmOrder(stack)
  for (let i = 0; i < SOURCES; i++) {
    t.same(order.get(String(i + 1)), [account(i, 0), account(i, 1), account(i, 2)], `source ${i + 1}: in order, once each`)
  }
})
