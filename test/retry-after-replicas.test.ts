import t from 'tap'
import { eventually, pushNative, startStack } from './helpers/stack.js'
import { pendingWork, startReplicas } from './helpers/replicas.js'

// An upstream's Retry-After binds every replica: the one it answered tells the others through
// PostgreSQL (NOTIFY cloudoreg_upstream_hold), and they hold their own gate until the same time.
const ENV = { UPSTREAM_CALL_ATTEMPTS: '1', RETRY_MAX_ATTEMPTS: '5', RETRY_BASE_DELAY_MS: '50', RETRY_MAX_DELAY_MS: '100', UPSTREAM_TIMEOUT_MS: '60000' }
const ROLE = (i: number): string => `arn:aws:iam::${String(500_000_000_000 + i)}:role/r`
const CONCURRENCY = 2
const SOURCES = 24

t.test('RHSM answers one replica 429 with Retry-After: 2: no replica calls RHSM within 2 s of it', async t => {
  const set = await startReplicas(t, 3, { ...ENV, CONCURRENCY: String(CONCURRENCY), LOG_LEVEL: 'info' })
  for (let i = 1; i <= SOURCES; i++) set.sources.addSource({ sourceId: String(i), applicationId: String(1000 + i), authenticationId: String(2000 + i), arn: ROLE(i) })
  // The notification takes a moment to reach the other replicas; a replica with a free slot could
  // start a call in that moment. So RHSM's answers wait until every slot of every replica waits on
  // RHSM (a replica runs at most CONCURRENCY events at a time, one call each): the 429 is then the
  // only answer, and no replica can start another call before it has heard of the hold. How long
  // the notification takes is not asserted here (a timing); that every replica honours it is.
  set.rhsm.pause()
  for (let i = 1; i <= SOURCES; i++) await pushNative(set.replicas[i % 3].url, 'ApplicationAuthentication.create', { application_id: 1000 + i, authentication_id: 2000 + i })
  await eventually(() => set.rhsm.heldRequests().length === 3 * CONCURRENCY ? true : undefined, 30_000, 'every slot of every replica waiting on RHSM')
  const throttled = set.rhsm.answerHeld({ status: 429, headers: { 'retry-after': '2' }, body: { errors: [{ status: '429', detail: 'Too Many Requests' }] } })!
  const lines = (): string[] => set.replicas.map(r => r.server.output())
  // Without the notification the others never hear of it: the answers are let go anyway, and the
  // request times below show the calls they then make.
  const heard = await eventually(() => {
    const l = lines()
    return l.filter(o => o.includes('upstream rhsm asked us to wait')).length === 1 &&
      l.filter(o => o.includes('upstream rhsm asked another replica to wait')).length === 2
      ? true
      : undefined
  }, 15_000).catch(() => false)
  t.ok(heard, 'the replica answered 429 holds, and the two others hear of it')
  set.rhsm.resume()
  await eventually(async () => (await pendingWork(set.db)).pending === 0 && set.rhsm.mappings.size === SOURCES ? true : undefined, 50_000, 'every source mapped')

  t.ok(throttled.answeredAt !== undefined, 'the 429 was answered')
  const answered = throttled.answeredAt!
  // Requests that arrived before the 429 was answered were in flight then (held by the fake): not recalled.
  const during = set.rhsm.requests.filter(r => r.at > answered && r.at < answered + 2000)
  t.same(during.map(r => r.at - answered), [], 'no RHSM request from any replica within 2 s of the 429')
  const after = set.rhsm.requests.filter(r => r.at > answered).map(r => r.at - answered)
  t.ok(after.length > 0 && Math.min(...after) >= 2000, `the next RHSM request came ${Math.min(...after)} ms after the 429`)
  const { rows: [ends] } = await set.db.query("select count(*) filter (where state = 'done')::int as done from inbox")
  t.equal(ends.done, SOURCES, 'every event done')
})

t.test('a heard hold is checked: other targets and malformed payloads are ignored, a long one is capped; the listener comes back', async t => {
  const stack = await startStack(t, { env: { RETRY_AFTER_MAX_SECONDS: '1', LOG_LEVEL: 'info' } })
  const rhsm = stack.app.upstreamGates.get('rhsm')!
  const notify = async (payload: string): Promise<void> => { await stack.app.store.pool.query('select pg_notify($1, $2)', ['cloudoreg_upstream_hold', payload]) }
  const heard = (key: string): string[] => stack.logs.filter(l => l.includes(`upstream ${key} asked another replica to wait`))
  // The replica starts listening in the background: first a hold it hears, so that the rest is heard too.
  await eventually(async () => {
    await notify(`sources ${Date.now() + 300}`)
    await new Promise(resolve => setTimeout(resolve, 100))
    return heard('sources').length > 0 ? true : undefined
  }, 20_000, 'the replica listening')
  const far = Date.now() + 3_600_000
  for (const p of ['nobody ' + String(far), 'rhsm soon', 'rhsm -1', `rhsm ${far} extra`, 'RHSM ' + String(far), 'rhsm 99999999999999999', '']) await notify(p)
  await notify(`rhsm ${Date.now() - 1000}`)
  // A marker after them: once it is heard, so were they (one connection delivers in order).
  const sts = `sts:${stack.config.AWS_REGION}`
  await notify(`${sts} ${far}`)
  await eventually(() => heard(sts).length === 1 ? true : undefined, 20_000, 'the marker heard')
  t.equal(heard('rhsm').length, 0, 'nothing malformed, past or for another target held rhsm')
  t.notOk(rhsm.blocked())
  const until = Date.parse(/until (\S+?)"/.exec(heard(sts)[0])![1])
  t.ok(until <= Date.now() + 1000, 'an hour asked is cut to RETRY_AFTER_MAX_SECONDS')

  // The listening connection dropped (a database restart, a proxy's idle cut): it is opened again.
  await stack.app.store.pool.query("select pg_terminate_backend(pid) from pg_stat_activity where query ilike 'listen %'")
  await eventually(() => stack.logs.some(l => l.includes('lost the connection that hears')) ? true : undefined, 10_000, 'the loss logged')
  await eventually(async () => {
    await notify(`rhsm ${Date.now() + 800}`)
    await new Promise(resolve => setTimeout(resolve, 100))
    return heard('rhsm').length > 0 ? true : undefined
  }, 20_000, 'a hold heard again')
  t.pass('heard again after reconnecting')
})
