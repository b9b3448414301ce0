import t from 'tap'
import { createRecord, eventually, startStack } from './helpers/stack.js'

// sources-api, STS and RHSM each fail about 30% of calls (503, connection resets, hangs past the
// client timeout, STS throttling) and the Kafka broker stops for 20 s mid-run: every source still ends
// registered, nothing is lost, RHSM holds one mapping per source. FAULT_SOURCES scales it (default 1,000).
const SOURCES = Number(process.env.FAULT_SOURCES ?? 1000)
const account = (i: number): string => String(400_000_000_000 + i)

t.test(`${SOURCES} sources through upstreams failing 30% of calls and a 20 s broker outage`, async t => {
  const stack = await startStack(t, {
    kafka: true,
    env: {
      CONCURRENCY: '32',
      UPSTREAM_TIMEOUT_MS: '300',
      UPSTREAM_CALL_ATTEMPTS: '3',
      RETRY_BASE_DELAY_MS: '50',
      RETRY_MAX_DELAY_MS: '1000',
      RETRY_MAX_ATTEMPTS: '40',
      // On a loaded machine 300 ms timeouts add to the 30% of faults and may open a breaker for a while:
      // then events wait, uncounted, and a probe comes every second rather than every 30.
      BREAKER_OPEN_MS: '1000',
      LOG_LEVEL: 'error'
    }
  })
  for (const fake of [stack.sources, stack.sts, stack.rhsm]) {
    fake.failureRate = 0.3
    fake.hangMs = 1000
  }
  stack.sts.throttleRate = 0.05

  const records = []
  for (let i = 0; i < SOURCES; i++) {
    stack.sources.addSource({ sourceId: String(i + 1), applicationId: String(20_000 + i), authenticationId: String(30_000 + i), arn: `arn:aws:iam::${account(i)}:role/r` })
    records.push(createRecord(i, 20_000 + i, 30_000 + i))
  }
  const started = Date.now()
  for (let from = 0; from < SOURCES; from += 500) {
    const res = await fetch(`${stack.url}/internal/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ records: records.slice(from, from + 500) }) })
    t.equal(res.status, 202)
  }

  const registered = async (): Promise<number> =>
    (await stack.app.store.pool.query("select count(*)::int as n from registrations where state = 'registered'")).rows[0].n
  // Early in the run, so that most statuses are decided while the broker is away.
  await eventually(async () => await registered() >= SOURCES / 10 ? true : undefined, 300_000, 'a tenth of the sources')
  await stack.kafka!.pause()
  const pausedAt = Date.now()
  await new Promise(resolve => setTimeout(resolve, 20_000))
  await stack.kafka!.resume()
  t.comment(`broker stopped for ${((Date.now() - pausedAt) / 1000).toFixed(1)} s with ${await registered()} of ${SOURCES} sources registered`)

  await eventually(async () => {
    const { rows } = await stack.app.store.pool.query(`select (select count(*)::int from inbox where state = 'pending') as pending,
      (select count(*)::int from status_outbox where sent_at is null and not superseded) as unsent`)
    return rows[0].pending === 0 && rows[0].unsent === 0 ? true : undefined
  }, 600_000, 'every event processed and every status sent')
  const took = (Date.now() - started) / 1000

  const { rows: dead } = await stack.app.store.pool.query("select last_error, outcome, attempts from inbox where state = 'dead' limit 5")
  for (const d of dead) t.comment(`dead: ${JSON.stringify(d)}`)
  const { rows: states } = await stack.app.store.pool.query('select state, count(*)::int as n from inbox group by state')
  t.same(states, [{ state: 'done', n: SOURCES }], 'nothing lost, nothing dead')
  t.equal(await registered(), SOURCES, 'every source registered')
  t.equal(stack.rhsm.mappings.size, SOURCES, 'one RHSM mapping per source')
  let wrong = 0
  for (let i = 0; i < SOURCES; i++) if (stack.rhsm.mappings.get(String(i + 1))?.awsAccountId !== account(i)) wrong++
  t.equal(wrong, 0, 'each mapped to its own account')
  const messages = await stack.status!.waitFor(m => new Set(m.map(x => JSON.parse(x.value).resource_id)).size >= SOURCES, 120_000)
  const last = new Map<string, string>()
  for (const m of messages) last.set(JSON.parse(m.value).resource_id, JSON.parse(m.value).status)
  t.equal([...last.values()].filter(s => s === 'available').length, SOURCES, 'every final availability message reached the topic')

  const { rows: attempts } = await stack.app.store.pool.query('select sum(attempts)::int as total, max(attempts)::int as most from inbox')
  const faults = stack.sources.faultsInjected + stack.sts.faultsInjected + stack.rhsm.faultsInjected
  const posts = [...stack.rhsm.postsBySource.values()].reduce((a, b) => a + b, 0)
  t.comment(`${SOURCES} sources in ${took.toFixed(1)} s; ${faults} faults injected (sources ${stack.sources.faultsInjected}, STS ${stack.sts.faultsInjected}, RHSM ${stack.rhsm.faultsInjected}) plus 5% STS throttling`)
  t.comment(`event attempts: ${attempts[0].total} in all, at most ${attempts[0].most} for one event; RHSM creates applied: ${posts} for ${SOURCES} sources (more only when a create hung past the client timeout, was applied late and retried); ${messages.length} status messages`)
})
