import { Writable } from 'node:stream'
import { pino } from 'pino'
import t from 'tap'
import type { Logger } from '../src/log.js'
import { createGate, isParkedNote, parkedNote, parkingFor, type Gate } from '../src/upstream/breaker.js'
import { UpstreamError } from '../src/upstream/errors.js'
import { waitAsked } from '../src/upstream/http.js'
import { eventually } from './helpers/stack.js'

// The gate alone: a breaker that opens on outages only, refuses without calling, lets one probe
// through, and a line of parked events released in order.
function gateFor (t: { teardown: (fn: () => void) => void }, settings: Partial<{ minCalls: number, openMs: number, maxHoldMs: number }> = {}): { gate: Gate, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const log = pino({ level: 'debug' }, new Writable({ write (chunk, _e, done) { lines.push(JSON.parse(chunk.toString())); done() } })) as unknown as Logger
  const gate = createGate({
    key: 'rhsm',
    target: 'rhsm',
    settings: { failureRate: 0.5, windowMs: 10_000, minCalls: settings.minCalls ?? 4, openMs: settings.openMs ?? 300, maxHoldMs: settings.maxHoldMs ?? 60_000 },
    isOutage: err => err instanceof UpstreamError && err.kind === 'transient',
    log
  })
  t.teardown(gate.close)
  return { gate, lines }
}

// The gate's timers do not hold the process open (the server does, in production): this does here.
const alive = setInterval(() => {}, 1000)
t.teardown(() => clearInterval(alive))

const down = (): Promise<never> => Promise.reject(new UpstreamError('rhsm', 'transient', 'answered 503', 503))
const about = (): Promise<never> => Promise.reject(new UpstreamError('rhsm', 'rejected', 'answered 400', 400))
const up = async (): Promise<string> => 'ok'

async function failures (gate: Gate, n: number, fn: () => Promise<unknown>): Promise<UpstreamError[]> {
  const errors: UpstreamError[] = []
  for (let i = 0; i < n; i++) errors.push(await gate.run(fn).then(() => { throw new Error('expected a failure') }, (e: UpstreamError) => e))
  return errors
}

t.test('answers about one source never open it; outages over the minimum do; open, it calls nothing', async t => {
  const { gate, lines } = gateFor(t)
  const rejected = await failures(gate, 20, about)
  t.equal(gate.stats().state, 'closed', '20 × 400 leave it closed')
  t.equal(rejected[0].gate, undefined, 'a 400 names no gate: the event is not parked for it')
  const errors = await failures(gate, 4, down)
  t.equal(errors[3].gate, 'rhsm', 'an outage names its gate')
  t.equal(gate.stats().state, 'open', 'opened after the minimum number of calls')
  t.ok(gate.blocked())
  let called = 0
  const [refused] = await failures(gate, 1, async () => { called++ })
  t.equal(called, 0, 'nothing called while open')
  t.match(refused, { refused: true, throttled: false, gate: 'rhsm', kind: 'transient' })
  t.equal(lines.filter(l => /circuit opened/.test(String(l.msg))).length, 1, 'one log line when it opens')
  t.equal(parkingFor(new Map([['rhsm', gate]]), refused), gate, 'a failure on an open breaker parks')
  t.equal(parkingFor(new Map([['rhsm', gate]]), new Error('x')), undefined)
  t.equal(parkingFor(new Map(), refused), undefined)
})

t.test('parked events: one probe at a time while open, all released in order when it closes', async t => {
  const { gate, lines } = gateFor(t, { openMs: 200 })
  await failures(gate, 4, down)
  const stop = new AbortController()
  const order: number[] = []
  const releases: Array<() => void> = []
  const parked = [0, 1, 2, 3, 4].map(i => gate.park(stop.signal).then(release => { order.push(i); releases.push(release!) }))
  t.equal(gate.stats().waiting, 5)
  // After openMs the oldest is let through alone, to probe.
  await eventually(() => order.length === 1 ? true : undefined, 5000, 'the first probe')
  t.same(order, [0])
  // Its attempt ended without reaching RHSM: the next one probes.
  releases[0]()
  releases[0]()
  await eventually(() => order.length === 2 ? true : undefined, 5000, 'the second probe')
  // This one probes and fails: open again, and nobody else goes until openMs later.
  await failures(gate, 1, down)
  t.equal(gate.stats().state, 'open')
  releases[1]()
  await eventually(() => order.length === 3 ? true : undefined, 5000, 'the third probe')
  // This probe succeeds: closed, everyone else released in order.
  t.equal(await gate.run(up), 'ok')
  await Promise.all(parked)
  t.same(order, [0, 1, 2, 3, 4], 'released in the order they parked')
  t.equal(gate.stats().state, 'closed')
  t.ok(gate.stats().openSeconds > 0, 'time open counted')
  t.equal(lines.filter(l => /circuit closed/.test(String(l.msg))).length, 1, 'one log line when it closes')
  for (const r of releases) r()
  // Parking on a closed gate goes at once.
  t.type(await gate.park(stop.signal), 'function')
})

t.test('a half-open answer about one source closes it; shutdown releases the waiting with nothing', async t => {
  const { gate } = gateFor(t, { openMs: 100 })
  await failures(gate, 4, down)
  const stop = new AbortController()
  const first = gate.park(stop.signal)
  const second = gate.park(stop.signal)
  const release = await first
  t.match((await failures(gate, 1, about))[0], { kind: 'rejected' })
  t.equal(gate.stats().state, 'closed', 'RHSM answered: it is up')
  t.type(await second, 'function')
  release!()
  await failures(gate, 4, down)
  const waiting = gate.park(stop.signal)
  stop.abort()
  t.equal(await waiting, undefined, 'shutdown: no release')
  t.equal(await gate.park(stop.signal), undefined, 'already stopping')
  t.equal(gate.stats().waiting, 0)
})

t.test('an upstream asking to wait: no call until then, the waiting released after', async t => {
  const { gate, lines } = gateFor(t, { maxHoldMs: 400 })
  const throttled = new UpstreamError('rhsm', 'transient', 'answered 429', 429)
  throttled.throttled = true
  // Asked for an hour: the gate holds RETRY_AFTER_MAX_SECONDS (here 400 ms) at most.
  throttled.retryAfterMs = 3_600_000
  const startedAt = Date.now()
  t.match((await failures(gate, 1, () => Promise.reject(throttled)))[0], { throttled: true })
  t.equal(gate.stats().state, 'closed', 'a 429 is not an outage')
  t.ok(gate.blocked())
  let called = 0
  const [refused] = await failures(gate, 1, async () => { called++ })
  t.equal(called, 0)
  t.match(refused, { throttled: true, refused: true })
  t.equal(parkingFor(new Map([['rhsm', gate]]), refused), gate)
  const release = await gate.park(new AbortController().signal)
  t.ok(Date.now() - startedAt >= 390, 'released once the wait is over')
  release!()
  t.equal(await gate.run(up), 'ok')
  // A shorter wait asked meanwhile does not shorten a longer one; one log line per wait.
  const again = new UpstreamError('rhsm', 'transient', 'answered 503', 503)
  again.retryAfterMs = 300
  await failures(gate, 1, () => Promise.reject(again))
  again.retryAfterMs = 10
  await failures(gate, 1, () => Promise.reject(again))
  t.equal(lines.filter(l => /asked us to wait/.test(String(l.msg))).length, 2)
})

t.test('Retry-After and X-RateLimit-Delay', async t => {
  const now = Date.parse('2026-12-02T10:00:00Z')
  t.equal(waitAsked({ 'retry-after': '2' }, now), 2000)
  t.equal(waitAsked({ 'retry-after': ['3', '9'] }, now), 3000, 'the first of repeated headers')
  t.equal(waitAsked({ 'retry-after': 'Wed, 02 Dec 2026 10:00:05 GMT' }, now), 5000, 'an HTTP date')
  t.equal(waitAsked({ 'retry-after': 'Wed, 02 Dec 2026 09:00:05 GMT' }, now), 0, 'a date past')
  t.equal(waitAsked({ 'x-ratelimit-delay': '1.5' }, now), 1500)
  t.equal(waitAsked({ 'retry-after': '1', 'x-ratelimit-delay': '4' }, now), 4000, 'the longer of both')
  for (const bad of ['-1', '1e9', 'soon', '', '12345678901', '0x10']) t.equal(waitAsked({ 'retry-after': bad, 'x-ratelimit-delay': bad }, now), undefined, `ignored: ${bad}`)
  t.equal(waitAsked({}, now), undefined)
})

t.test('the store says why an event waits', async t => {
  t.ok(isParkedNote(parkedNote('rhsm', 'rhsm: not called: rhsm circuit open')))
  t.notOk(isParkedNote('rhsm: answered 503'))
  t.notOk(isParkedNote(null))
  t.equal(parkedNote('rhsm', 'x'.repeat(2000)).length, 1000)
})
