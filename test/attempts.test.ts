import t from 'tap'
import { eventually, getJson, identities, pushNative, startStack } from './helpers/stack.js'

const TOKEN = 'internal-token-for-tests-0123456789ab'
const arn = (n: number): string => `arn:aws:iam::12345678901${n}:role/redhat-cloud-meter`

t.test('every attempt of every event is recorded, shown in the source\'s history with attempts=true and to operators', async t => {
  const stack = await startStack(t, { env: { INTERNAL_TOKEN: TOKEN, RETRY_MAX_ATTEMPTS: '3', UPSTREAM_CALL_ATTEMPTS: '1' } })
  const op = async (path: string): Promise<any> => await (await fetch(`${stack.url}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()
  const ended = async (id: number): Promise<any> => await eventually(async () => {
    const e = await op(`/internal/v1/events/${id}`)
    return e.state === 'done' || e.state === 'dead' ? e : undefined
  }, 30_000, `event ${id} to end`)

  // 1: STS unavailable twice, then verified. One at a time: each fault belongs to one event.
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: arn(1) })
  stack.sts.failNext(2, 503)
  await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 42, authentication_id: 311 })
  const first = await ended(1)
  t.match(first, { state: 'done', attempts: 3 })
  t.match(first.attempt_history, [
    { attempt: 1, result: 'retry', upstream: 'sts', step: 'AssumeRole', http_status: 503, error_code: 'ServiceUnavailable', outcome_code: null, error: /AssumeRole failed: ServiceUnavailable/ },
    { attempt: 2, result: 'retry', upstream: 'sts', error_code: 'ServiceUnavailable' },
    { attempt: 3, result: 'done', upstream: null, error_code: null, outcome_code: null, error: null }
  ])
  for (const a of first.attempt_history) {
    t.ok(a.duration_ms >= 0 && Date.parse(a.finished_at) >= Date.parse(a.started_at), 'timed')
    t.match(a.replica, /^.+\/\d+\/[0-9a-f]{8}$/, 'the replica (lease owner) that ran it')
  }

  // 2: AWS denies the role: one attempt that decided CG3002, with AWS's code.
  stack.sources.addSource({ sourceId: '8', applicationId: '43', authenticationId: '312', arn: arn(2) })
  stack.sts.deny.add(arn(2))
  await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 43, authentication_id: 312 })
  t.match((await ended(2)).attempt_history, [{ attempt: 1, result: 'done', upstream: 'sts', step: 'AssumeRole', error_code: 'AccessDenied', outcome_code: 'CG3002' }])

  // 3: RHSM answers 503 until the attempts run out: a dead letter, and what it met each time.
  stack.sources.addSource({ sourceId: '9', applicationId: '44', authenticationId: '313', arn: arn(3) })
  stack.rhsm.failNext(3, 503)
  await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 44, authentication_id: 313 })
  const dead = await ended(3)
  t.match(dead, { state: 'dead', attempts: 3 })
  t.same(dead.attempt_history.map((a: any) => [a.attempt, a.result, a.upstream, a.step, a.http_status, a.error_code, a.outcome_code]), [
    [1, 'retry', 'rhsm', 'RHSM', 503, 'HTTP 503', null],
    [2, 'retry', 'rhsm', 'RHSM', 503, 'HTTP 503', null],
    [3, 'dead', 'rhsm', 'RHSM', 503, 'HTTP 503', 'CR5000']
  ])
  const letters = await op('/internal/v1/dead-letters')
  t.match(letters.data, [{ id: 3, last_attempt: { upstream: 'rhsm', step: 'RHSM', http_status: 503, error_code: 'HTTP 503' } }])

  // The customer's history: attempts only when asked for, and only of their org's source.
  const plain = await getJson(`${stack.url}/api/cloudoreg/v1/sources/7/history`)
  t.notOk('attempt_history' in plain.body.timeline[0], 'no attempts unless asked')
  const withAttempts = await getJson(`${stack.url}/api/cloudoreg/v1/sources/7/history?attempts=true`)
  t.same(withAttempts.body.timeline.filter((e: any) => e.kind === 'event').map((e: any) => e.attempt_history.map((a: any) => a.result)), [['retry', 'retry', 'done']])
  t.equal((await getJson(`${stack.url}/api/cloudoreg/v1/sources/7/history?attempts=true`, identities.base64.user_other_org_1111111)).status, 404, 'another org sees nothing')
  t.equal((await getJson(`${stack.url}/api/cloudoreg/v1/sources/7/history?attempts=maybe`)).status, 400)

  // Operators: the same views in any org, by source.
  t.match(await op('/internal/v1/sources/9'), { source_id: '9', org_id: '7654321', state: 'unavailable', error: { code: 'CR5000' } })
  const history = await op('/internal/v1/sources/9/history?attempts=true')
  t.same(history.timeline.filter((e: any) => e.kind === 'event').map((e: any) => e.attempt_history.length), [3])
  t.match(await op('/internal/v1/sources/404'), { status: 404, detail: 'source 404 has no registration' })
  t.equal((await fetch(`${stack.url}/internal/v1/sources/9/history`)).status, 401, 'the internal token is needed')
})
