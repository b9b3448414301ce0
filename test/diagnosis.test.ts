import t from 'tap'
import { eventually, getJson, identities, pushNative, startStack, untilNot503 } from './helpers/stack.js'

const ROLE = 'arn:aws:iam::123456789012:role/redhat-cloud-meter'
const EXTERNAL_ID = 'ext-7f3a-source-7'
const RED_HAT_ACCOUNT = '998877665544'
const SOURCE = '/api/cloudoreg/v1/sources'

t.test('a role that denies access: the failed step, AWS\'s code, what to fix, the exact trust policy; checks once a minute', async t => {
  const stack = await startStack(t)
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE, externalId: EXTERNAL_ID })
  stack.sts.deny.add(ROLE)
  await untilNot503(() => pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 42, authentication_id: 311 }))
  await eventually(async () => (await getJson(`${stack.url}${SOURCE}/7`)).body.state === 'unavailable' ? true : undefined)

  const { status, body } = await getJson(`${stack.url}${SOURCE}/7/diagnosis`)
  t.equal(status, 200)
  t.match(body, {
    source_id: '7',
    application_id: '42',
    state: 'unavailable',
    error: { code: 'CG3002' },
    failed_step: 'AssumeRole',
    upstream_code: 'AccessDenied',
    role_arn: ROLE,
    red_hat_aws_account_id: RED_HAT_ACCOUNT,
    external_id: EXTERNAL_ID,
    what_to_fix: new RegExp(`arn:aws:iam::${RED_HAT_ACCOUNT}:root.*sts:ExternalId "${EXTERNAL_ID}"`),
    next_check_at: null
  })
  t.equal(body.last_role_session_name, stack.sts.calls.filter(c => c.action === 'AssumeRole').at(-1)!.params.RoleSessionName,
    'the session name the customer finds in CloudTrail')
  t.match(body.last_role_session_name, /^cloudoreg-s7-e\d+$/)
  t.same(body.steps.map((s: any) => `${s.step}: ${s.result}`), [
    'read application: passed', 'read authentication: passed', 'duplicates: passed',
    'AssumeRole: failed', 'GetCallerIdentity: not reached', 'RHSM: not reached'
  ])
  // The document a customer pastes into IAM, byte for byte.
  t.equal(JSON.stringify(body.trust_policy), '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::998877665544:root"},' +
    '"Action":"sts:AssumeRole","Condition":{"StringEquals":{"sts:ExternalId":"ext-7f3a-source-7"}}}]}')
  t.same(body.permission_policy.Statement[0].Action, ['sts:GetCallerIdentity'])
  t.ok(Date.parse(body.last_checked_at) <= Date.now())
  t.equal((await getJson(`${stack.url}${SOURCE}/7/diagnosis`, identities.base64.user_other_org_1111111)).status, 404, 'org-scoped')

  // The customer fixes the trust policy and asks for a check.
  stack.sts.deny.delete(ROLE)
  const check = (identity = identities.base64.user_7654321): Promise<Response> =>
    untilNot503(() => fetch(`${stack.url}${SOURCE}/7/check`, { method: 'POST', headers: { 'x-rh-identity': identity } }))
  t.equal((await check(identities.base64.user_other_org_1111111)).status, 404, 'another org cannot check it')
  const first = await check()
  t.equal(first.status, 202)
  const { event_id: eventId } = await first.json()
  t.equal(first.headers.get('cloudoreg-event-id'), String(eventId))
  const second = await check()
  t.equal(second.status, 429)
  t.equal(second.headers.get('content-type'), 'application/problem+json; charset=utf-8')
  t.ok(Number(second.headers.get('retry-after')) > 0 && Number(second.headers.get('retry-after')) <= 60)
  await eventually(async () => (await getJson(`${stack.url}${SOURCE}/7`)).body.state === 'registered' ? true : undefined)

  const fixed = (await getJson(`${stack.url}${SOURCE}/7/diagnosis`)).body
  t.match(fixed, { state: 'registered', error: null, failed_step: null, upstream_code: null, what_to_fix: null })
  t.ok(fixed.steps.every((s: any) => s.result === 'passed'))
  t.ok(Date.parse(fixed.check_available_at) > Date.now(), 'the next check is a minute after the last')
  const history = (await getJson(`${stack.url}${SOURCE}/7/history`)).body
  t.match(history.timeline.find((e: any) => e.event_id === eventId), { description: 'check requested by the customer', outcome: 'registered' })
})

t.test('a session that is not an assumed role fails at GetCallerIdentity', async t => {
  const stack = await startStack(t)
  stack.sources.addSource({ sourceId: '8', applicationId: '43', authenticationId: '312', arn: ROLE })
  stack.sts.notAssumed.add(ROLE)
  await untilNot503(() => pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 43, authentication_id: 312 }))
  await eventually(async () => (await getJson(`${stack.url}${SOURCE}/8`)).body.state === 'unavailable' ? true : undefined)
  const { body } = await getJson(`${stack.url}${SOURCE}/8/diagnosis`)
  t.match(body, { error: { code: 'CG3003' }, failed_step: 'GetCallerIdentity', external_id: null, trust_policy: null, what_to_fix: /not a role|IAM role session/ })
  t.equal((await getJson(`${stack.url}${SOURCE}/9/diagnosis`)).status, 404)
})

t.test('sysconfig: the account from GetCallerIdentity, cached, and the policies, at cloudoreg\'s and cloudigrade\'s paths', async t => {
  const stack = await startStack(t)
  const own = (): number => stack.sts.calls.filter(c => c.action === 'GetCallerIdentity').length
  const a = await getJson(`${stack.url}/api/cloudoreg/v1/sysconfig`)
  const b = await getJson(`${stack.url}/api/cloudigrade/v2/sysconfig/`)
  t.equal(a.status, 200)
  t.same(a.body, b.body)
  t.match(a.body, {
    aws_account_id: RED_HAT_ACCOUNT,
    aws_policies: { traditional_inspection: { Statement: [{ Action: ['sts:GetCallerIdentity'] }] } },
    trust_policy: { Statement: [{ Principal: { AWS: `arn:aws:iam::${RED_HAT_ACCOUNT}:root` } }] }
  })
  t.equal(own(), 1, 'asked AWS once')
  t.equal((await fetch(`${stack.url}/api/cloudoreg/v1/sysconfig`)).status, 401)

  const broken = await startStack(t)
  broken.sts.failNext(3, 503) // every attempt of the SDK
  const refused = await fetch(`${broken.url}/api/cloudoreg/v1/sysconfig`, { headers: { 'x-rh-identity': identities.base64.user_7654321 } })
  t.equal(refused.status, 503)
  t.ok(refused.headers.get('retry-after'))
  t.equal((await getJson(`${broken.url}/api/cloudoreg/v1/sysconfig`)).status, 200, 'a failure is not cached')
})
