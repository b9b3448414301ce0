import t from 'tap'
import { eventually, inboxStates, outboxSettled, pushNative, startStack } from './helpers/stack.js'

// An upstream that asks us to wait (429 or 503 with Retry-After or X-RateLimit-Delay) gets no call
// from this process until then, and the event it answered spends no attempt on it. Asserted on the
// fakes' request times, not on sleeps.
const ENV = { UPSTREAM_CALL_ATTEMPTS: '1', RETRY_MAX_ATTEMPTS: '2', RETRY_BASE_DELAY_MS: '50', RETRY_MAX_DELAY_MS: '100', LOG_LEVEL: 'info' }
const ROLE = (i: number): string => `arn:aws:iam::${String(500_000_000_000 + i)}:role/r`

t.test('RHSM answers 429 with Retry-After: 2: no call to RHSM within 2 s, no attempt spent', async t => {
  // One attempt at a time, so that no other RHSM request is already on its way when the 429 comes back.
  const stack = await startStack(t, { env: { ...ENV, CONCURRENCY: '1' } })
  for (let i = 1; i <= 5; i++) stack.sources.addSource({ sourceId: String(i), applicationId: String(40 + i), authenticationId: String(400 + i), arn: ROLE(i) })
  stack.rhsm.replyNext({ status: 429, headers: { 'retry-after': '2' }, body: { errors: [{ status: '429', detail: 'Too Many Requests' }] } })
  for (let i = 1; i <= 5; i++) await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 40 + i, authentication_id: 400 + i })
  await eventually(async () => (await inboxStates(stack)).every(e => e.state === 'done') && stack.rhsm.mappings.size === 5 ? true : undefined, 30_000, 'every source mapped')
  const [throttled, ...later] = stack.rhsm.requests
  const gap = Math.min(...later.map(r => r.at - throttled.at))
  t.ok(gap >= 2000, `the next RHSM request came ${gap} ms after the 429`)
  t.same((await inboxStates(stack)).map(e => e.attempts), [1, 1, 1, 1, 1], 'the throttled call spent no attempt')
  t.equal(stack.logs.filter(l => l.includes('upstream rhsm asked us to wait')).length, 1, 'one log line')
  t.match(await (await fetch(`${stack.url}/metrics`)).text(), /cloudoreg_upstream_call_seconds_count\{target="rhsm",outcome="throttled"\} 1\n/)
})

t.test('sources-api answers 503 with X-RateLimit-Delay, then with an HTTP-date Retry-After: no call to it until then', async t => {
  const stack = await startStack(t, { env: ENV })
  stack.sources.addSource({ sourceId: '1', applicationId: '41', authenticationId: '401', arn: ROLE(1) })
  stack.sources.replyNext({ status: 503, headers: { 'x-ratelimit-delay': '1.5' }, body: { errors: [{ status: '503', detail: 'slow down' }] } })
  await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 41, authentication_id: 401 })
  await eventually(() => stack.rhsm.mappings.size === 1 ? true : undefined, 30_000, 'the source mapped')
  const [first, second] = stack.sources.requests
  t.ok(second.at - first.at >= 1500, `the next sources-api request came ${second.at - first.at} ms after the 503`)

  // The first source's status is sent before the next 503: a PATCH already on its way when the 503
  // answers is no call made after it.
  await outboxSettled(stack, 1)

  stack.sources.addSource({ sourceId: '2', applicationId: '42', authenticationId: '402', arn: ROLE(2) })
  // An HTTP date is whole seconds: at least 2 s from now.
  const until = (Math.floor(Date.now() / 1000) + 3) * 1000
  const asked = stack.sources.requests.length
  stack.sources.replyNext({ status: 503, headers: { 'retry-after': new Date(until).toUTCString() }, body: { errors: [{ status: '503', detail: 'maintenance' }] } })
  await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 42, authentication_id: 402 })
  // Mapped in RHSM comes before the event's outcome is recorded: wait for both.
  await eventually(async () => stack.rhsm.mappings.size === 2 && (await inboxStates(stack)).every(e => e.state === 'done') ? true : undefined,
    30_000, 'the second source mapped and its event done')
  const next = stack.sources.requests[asked + 1]
  t.ok(next.at >= until - 5, `the next sources-api request (${next.path}) came ${next.at - until} ms after the date (5 ms allowed for clock rounding)`)
  t.same((await inboxStates(stack)).map(e => e.attempts), [1, 1], 'no attempt spent on either')
})

t.test('a status PATCH answered 429 is not the message\'s failure: it waits, never parked', async t => {
  // One failed send would park a message: a 429 must not count as one.
  const stack = await startStack(t, { env: { ...ENV, STATUS_MAX_ATTEMPTS: '1' } })
  stack.sources.addSource({ sourceId: '1', applicationId: '41', authenticationId: '401', arn: ROLE(1) })
  stack.sources.failPatches.set('41', 429)
  await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 41, authentication_id: 401 })
  await eventually(() => stack.sources.requests.some(r => r.method === 'PATCH') ? true : undefined, 30_000, 'a PATCH answered 429')
  stack.sources.failPatches.delete('41')
  await eventually(() => stack.sources.patches.length === 1 ? true : undefined, 30_000, 'the status delivered')
  const { rows } = await stack.app.store.pool.query('select attempts, parked_at from status_outbox')
  t.match(rows, [{ attempts: 0, parked_at: null }], 'not parked, no send counted against it')
})
