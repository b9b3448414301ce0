import t, { type Test } from 'tap'
import { LANES } from '../src/events/lanes.js'
import { createRateBudgets, createRateGate, SHARE_FLOOR, withCallPriority } from '../src/upstream/rate-budget.js'
import { eventually, identities, untilNot503 } from './helpers/stack.js'
import { pendingWork, startReplicas } from './helpers/replicas.js'

function near (t: Test, actual: number, expected: number, message?: string): void {
  t.ok(Math.abs(actual - expected) < 1e-9, `${message ?? ''} (${actual} ≈ ${expected})`)
}

t.test('a gate halves its rate when throttled (once a second), then grows back to its ceiling', async t => {
  let now = 1_000_000
  const cuts: number[] = []
  const gate = createRateGate(40, rate => cuts.push(rate), () => now)
  t.equal(gate.rate(), 40)
  gate.throttled()
  t.equal(gate.rate(), 20)
  now += 500
  gate.throttled()
  near(t, gate.rate(), 21, 'a second throttle within the second is the same burst: no second cut (it grew by 40/20 per second meanwhile)')
  now += 600
  gate.throttled()
  near(t, gate.rate(), 11.1, 'past a second: halved again')
  now += 60_000
  await gate.take()
  t.equal(gate.rate(), 40, 'back to the ceiling, never above it')
  gate.setCeiling(10)
  t.equal(gate.rate(), 10, 'a lower share takes effect at once')
  gate.setCeiling(30)
  now += 2000
  await gate.take()
  near(t, gate.rate(), 13, 'a higher one is reached gradually')
  for (let i = 0; i < 20; i++) {
    now += 1000
    gate.throttled()
  }
  t.ok(gate.rate() < 2, 'throttled every second, it settles near its additive step (30/20 per second)')
  t.equal(cuts.length, 22)
  near(t, cuts[1], 11.1)
  const slow = createRateGate(0.15, undefined, () => now)
  slow.throttled()
  t.equal(slow.rate(), 0.1, 'never slower than 0.1 calls per second')

  const budgets = createRateBudgets({ sts: 50, rhsm: 30, sources: 90 })
  budgets.share(3)
  t.same([budgets.gates.sts.rate(), budgets.gates.rhsm.rate(), budgets.gates.sources.rate()].map(r => Math.round(r * 100) / 100), [16.67, 10, 30])
  budgets.share(0)
  t.equal(budgets.gates.rhsm.rate(), 10, 'no replica counted is this one alone; raising is gradual')
})

t.test('replicas share a budget by the work they hold, each keeping a floor', async t => {
  let now = 1_000_000
  const at = (replicas: number, mine: number, total: number): number => {
    const budgets = createRateBudgets({ sts: 50, rhsm: 50, sources: 50 })
    budgets.share(replicas, mine, total)
    return Math.round(budgets.gates.sts.rate() * 100) / 100
  }
  // Three replicas holding 1,000, 300 and 0 of a wave: 50 × (0.2 / 3 + 0.8 × held / 1,300).
  const shares = [at(3, 1000, 1300), at(3, 300, 1300), at(3, 0, 1300)]
  t.same(shares, [34.1, 12.56, 3.33], 'most to the replica with most of the wave, a floor to the idle one')
  t.ok(Math.abs(shares.reduce((a, b) => a + b) - 50) < 0.05, `together the budget (${shares.reduce((a, b) => a + b).toFixed(2)})`)
  t.equal(at(3, 0, 0), 16.67, 'no work anywhere: equal shares')
  t.equal(at(2, 5000, 100), 45, 'a count above the total (heartbeats a moment apart) is the total')
  t.equal(at(1, 7, 7), 50, 'alone: the whole budget')

  // A replica whose share grows reaches it gradually; one whose share shrinks slows down at once.
  const budgets = createRateBudgets({ sts: 50, rhsm: 50, sources: 50 })
  const gate = createRateGate(50, undefined, () => now)
  budgets.share(3, 0, 1300)
  gate.setCeiling(budgets.gates.sts.rate())
  t.equal(Math.round(gate.rate() * 100) / 100, 3.33, 'idle: the floor at once')
  gate.setCeiling(34.1)
  now += 1000
  await gate.take()
  t.ok(gate.rate() < 6, `one second after its share grew to 34.1/s it calls at ${gate.rate().toFixed(2)}/s`)

  // Replicas on a shared database start at the floor share: one that starts before the others have said
  // they are alive counts itself alone, and would otherwise begin at the whole budget.
  const starting = createRateBudgets({ sts: 50, rhsm: 20, sources: 100 }, undefined, SHARE_FLOOR)
  t.same([starting.gates.sts.rate(), starting.gates.rhsm.rate(), starting.gates.sources.rate()], [10, 4, 20], 'a fifth of each budget at start')
  starting.share(1)
  t.ok(starting.gates.sts.rate() < 11, 'alone by its first heartbeat: the whole budget is its ceiling, reached gradually')
})

t.test('a gate spaces calls at its rate', async t => {
  const gate = createRateGate(50)
  const started = performance.now()
  // The gate's timers do not keep a process alive (a call waiting at shutdown is dropped); this test's must.
  const alive = setInterval(() => {}, 1000)
  await Promise.all(Array.from({ length: 11 }, async () => await gate.take()))
  clearInterval(alive)
  // 11 calls at 50/s: the last starts 10 × 20 ms after the first (timers fire no earlier than asked).
  t.ok(performance.now() - started >= 199, 'the eleventh call waited for its turn')
})

t.test('a gate at a high rate lets every call whose turn has come through at once, not one per timer', async t => {
  // As the tests and benchmarks that measure something else set the budgets: 100,000/s.
  const gate = createRateGate(100_000)
  const alive = setInterval(() => {}, 1000)
  const started = performance.now()
  await Promise.all(Array.from({ length: 2000 }, async () => await gate.take()))
  const took = performance.now() - started
  clearInterval(alive)
  // 2,000 turns of 10 µs are 20 ms; a gate letting one call through per timer (at least 1 ms each) takes 2 s or more.
  t.ok(took < 1000, `2,000 calls at 100,000/s took ${took.toFixed(0)} ms`)
})

t.test('waiting calls start by their caller\'s priority: a customer\'s before the re-checks already waiting', async t => {
  const gate = createRateGate(50)
  const alive = setInterval(() => {}, 1000)
  const order: string[] = []
  const call = (lane: number | undefined, name: string): Promise<void> => {
    const take = async (): Promise<void> => { await gate.take(); order.push(name) }
    return lane === undefined ? take() : withCallPriority(lane, take)
  }
  // The first re-check starts at once, the rest wait their turns; then a replay, a create and a call made outside any event.
  const calls = Array.from({ length: 6 }, (_, i) => call(LANES.recheck, `recheck ${i}`))
  calls.push(call(LANES.bulk, 'replay'), call(LANES.customer, 'create'), call(undefined, 'relay'))
  await Promise.all(calls)
  clearInterval(alive)
  t.same(order, ['recheck 0', 'create', 'relay', 'recheck 1', 'recheck 2', 'recheck 3', 'recheck 4', 'recheck 5', 'replay'],
    'customer lane (and calls outside an event) first, then re-checks in arrival order, then bulk work')
})

// The figure is 50/s and 3,000 re-checks; scaled down to fit the suite: 20/s and 300.
// RATE_TEST_SIZE=full runs the size (about 70 s; figures in BENCHMARKS.md).
const FULL = process.env.RATE_TEST_SIZE === 'full'
const LIMIT = FULL ? 50 : 20
const CHECKS = FULL ? 3000 : 300
const WARM_UP_MS = 3000

t.test(`three replicas share STS_MAX_RPS=${LIMIT}: a fake STS throttling above it answers under 1% Throttling, nothing ends CR5000`, async t => {
  const set = await startReplicas(t, 3, {
    // RATE_TEST_STS_MAX_RPS=100000 shows the test failing without a budget (166 of 454 throttled in one run).
    STS_MAX_RPS: process.env.RATE_TEST_STS_MAX_RPS ?? String(LIMIT),
    LEASE_MS: '3000',
    CONCURRENCY: process.env.RATE_TEST_CONCURRENCY ?? '16',
    CHECK_ORG_PER_MINUTE: '100000',
    CHECK_TOTAL_PER_MINUTE: '100000',
    RETRY_MAX_ATTEMPTS: '3'
  })
  set.sts.assumeRoleLimit = LIMIT
  for (let n = 1; n <= CHECKS; n++) {
    set.sources.addSource({ sourceId: String(n), applicationId: String(10_000 + n), authenticationId: String(20_000 + n), arn: `arn:aws:iam::${String(100000000000 + n)}:role/redhat-cloud-meter` })
  }
  // sources-api's monitor: one availability check per source, spread over the replicas.
  const pushStart = Date.now()
  let next = 1
  const answers = new Set<number>()
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next <= CHECKS) {
      const n = next++
      // Resent while shed with 503 on a busy machine, as sources-api checks again on its next round.
      const res = await untilNot503(() => fetch(`${set.replicas[n % 3].url}/internal/api/cloudoreg/v1/availability_status`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-rh-identity': identities.base64.system_7654321, 'x-rh-sources-org-id': '7654321' },
        body: JSON.stringify({ source_id: String(n) })
      }))
      answers.add(res.status)
    }
  }))
  const pushedIn = (Date.now() - pushStart) / 1000
  t.same([...answers], [204], 'every check answered 204')
  // Each replica's heartbeat says how much of the wave it holds: the budget is shared by that.
  const held = await eventually(async () => {
    const { rows } = await set.db.query<{ n: number, demand: number }>('select count(*)::int as n, coalesce(sum(demand), 0)::int as demand from replicas')
    return rows[0].n === 3 && rows[0].demand > 0 ? rows[0] : undefined
  }, 10_000, 'the replicas to report the work they hold')
  t.ok(held.demand <= CHECKS, `the replicas hold ${held.demand} checks between them`)
  await eventually(async () => {
    const w = await pendingWork(set.db)
    return w.pending === 0 ? true : undefined
  }, FULL ? 300_000 : 120_000, 'every check to end')

  const assumes = set.sts.calls.filter(c => c.action === 'AssumeRole').map(c => c.at).sort((a, b) => a - b)
  const first = assumes[0]
  const steady = assumes.filter(at => at >= first + WARM_UP_MS)
  const seconds = (steady.at(-1)! - steady[0]) / 1000
  const rate = (steady.length - 1) / seconds
  let peak = 0
  for (let i = 0, j = 0; i < steady.length; i++) {
    while (steady[i] - steady[j] >= 1000) j++
    peak = Math.max(peak, i - j + 1)
  }
  const { rows: [ends] } = await set.db.query(`select
      count(*) filter (where state = 'done')::int as done,
      count(*) filter (where state = 'dead')::int as dead,
      max(attempts)::int as most_attempts from inbox`)
  const { rows: [cr5000] } = await set.db.query("select count(*)::int as n from registrations where last_error_code = 'CR5000'")
  t.comment(`${assumes.length} AssumeRole calls, ${set.sts.limited} throttled; after ${WARM_UP_MS} ms of warm-up: ${rate.toFixed(1)}/s on average over ${seconds.toFixed(1)} s, at most ${peak} in any one second (budget ${LIMIT}/s); the ${CHECKS} checks were pushed in ${pushedIn.toFixed(1)} s`)
  const tenths = Array(10).fill(0)
  for (const at of assumes) tenths[Math.min(9, Math.floor(10 * (at - first) / (assumes.at(-1)! - first + 1)))]++
  t.comment(`AssumeRole calls per tenth of the run: ${tenths.join(' ')}`)
  t.equal(ends.done, CHECKS, 'every check done')
  t.equal(ends.dead, 0)
  t.equal(cr5000.n, 0, 'no CR5000')
  t.ok(set.sts.limited < assumes.length / 100, `${set.sts.limited} throttled answers of ${assumes.length}: under 1%`)
  // Calls start at most at the budget's pace; the fake sees them no faster than that on average.
  t.ok(rate <= LIMIT * 1.05, `${rate.toFixed(1)} AssumeRole/s in all after warm-up, at most about ${LIMIT}/s`)
})
