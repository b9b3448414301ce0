import t from 'tap'
import { eventually, getJson, identities, inboxStates, ORG, pushNative, startStack, type Stack } from './helpers/stack.js'

// sources-api's periodic check as sources-api-go sends it (service/availability_check.go): no credential,
// its identity and tenant headers, to the path its cloud-meter check URL names by default.
const LEGACY = '/internal/api/cloudigrade/v1/availability_status'
const OWN = '/internal/api/cloudoreg/v1/availability_status'
const ROLE = 'arn:aws:iam::123456789012:role/redhat-cloud-meter'

async function check (stack: Stack, sourceId: string, path = LEGACY, org = ORG): Promise<Response> {
  return fetch(`${stack.url}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json;charset=utf-8',
      'x-rh-identity': org === ORG ? identities.base64.system_7654321 : identities.base64.user_other_org_1111111,
      'x-rh-sources-org-id': org,
      'x-rh-sources-account-number': ''
    },
    body: JSON.stringify({ source_id: sourceId })
  })
}

const assumeRoles = (stack: Stack): number => stack.sts.calls.filter(c => c.action === 'AssumeRole').length

async function registered (stack: Stack): Promise<void> {
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE })
  await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 42, authentication_id: 311 }, { 'webhook-id': 'create' })
  await ended(stack)
  await eventually(() => stack.sources.patches.length === 1 ? true : undefined, 60_000, 'the first PATCH')
}

async function ended (stack: Stack): Promise<Array<{ event_type: string, outcome: string | null }>> {
  return eventually(async () => {
    const rows = await inboxStates(stack)
    return rows.every(r => r.state !== 'pending') ? rows : undefined
  }, 60_000, 'every event to end')
}

t.test('2,000 checks of one source in a burst: one stored check, one AssumeRole, one PATCH', async t => {
  const stack = await startStack(t, { env: { CHECK_ORG_PER_MINUTE: '100000', CHECK_TOTAL_PER_MINUTE: '100000' } })
  await registered(stack)
  // Last verified an hour ago: the first check verifies again.
  await stack.app.store.pool.query("update registrations set updated_at = now() - interval '1 hour'")
  const before = { sts: assumeRoles(stack), patches: stack.sources.patches.length }

  const N = 2000
  const answers: number[] = []
  const started = Date.now()
  let next = 0
  await Promise.all(Array.from({ length: 50 }, async () => {
    while (next < N) {
      const i = next++
      answers.push((await check(stack, '7', i % 2 === 0 ? LEGACY : OWN)).status)
    }
  }))
  const seconds = (Date.now() - started) / 1000
  t.same([...new Set(answers)], [204], 'every check answered 204')
  const rows = await ended(stack)
  const checks = rows.filter(r => r.event_type === 'cloudoreg.check')
  // sources-api's checks of a source within a minute are one delivery. A burst that a loaded machine
  // stretches past a minute may store one more per minute, which reports the first's result again.
  const windows = Math.ceil(seconds / 60)
  if (windows === 1) t.equal(checks.length, 1, 'one check stored: the others were the pending one, or its redeliveries')
  else t.ok(checks.length >= 1 && checks.length <= windows, `at most one check stored per minute of the burst (${checks.length} in ${windows})`)
  t.equal(checks[0].outcome, 'verified; mapping already held')
  // The PATCH leaves through the relay after the outcome: wait for it, then a little longer for a second that must not come.
  await eventually(() => stack.sources.patches.length >= before.patches + checks.length ? true : undefined, 30_000, 'the PATCH')
  await new Promise(resolve => setTimeout(resolve, 500))
  t.equal(assumeRoles(stack) - before.sts, 1, 'one AssumeRole')
  t.equal(stack.sources.patches.length - before.patches, checks.length, 'one PATCH per stored check')
  t.comment(`${N} checks in ${seconds.toFixed(1)} s: ${checks.length} stored, ${assumeRoles(stack) - before.sts} AssumeRole, ${stack.sources.patches.length - before.patches} PATCH`)
})

t.test('a check soon after the last verification reports its result again without calling STS; an operator\'s re-verify does call it', async t => {
  const INTERNAL_TOKEN = 'internal-token-check-0123456789abcdef'
  const stack = await startStack(t, { env: { INTERNAL_TOKEN } })
  await registered(stack)
  const sts = assumeRoles(stack)
  t.equal((await check(stack, '7')).status, 204)
  t.equal((await ended(stack)).at(-1)!.outcome, 're-check soon after the last verification: its result reported again')
  t.equal(assumeRoles(stack), sts, 'no STS call')
  await eventually(() => stack.sources.patches.length === 2 ? true : undefined)
  t.same(stack.sources.patches.map(p => (p.body as any).availability_status), ['available', 'available'], 'the last result reported again')

  // The last result was unavailable: that is what is reported again.
  await stack.app.store.pool.query("update registrations set state = 'unavailable', last_error_code = 'CG3002', last_error_message = 'denied', updated_at = now()")
  // A minute later (sources-api's checks of a source within a minute are one delivery).
  await stack.app.store.pool.query("delete from delivery_keys where key like 'check:%'")
  t.equal((await check(stack, '7', OWN)).status, 204)
  await ended(stack)
  await eventually(() => stack.sources.patches.length === 3 ? true : undefined)
  t.same(stack.sources.patches.at(-1)!.body, { availability_status: 'unavailable', availability_status_error: 'denied' })

  const reverify = await fetch(`${stack.url}/internal/v1/sources/7/reverify`, { method: 'POST', headers: { authorization: `Bearer ${INTERNAL_TOKEN}` } })
  t.equal(reverify.status, 202)
  t.equal((await ended(stack)).at(-1)!.outcome, 'verified; mapping already held')
  t.equal(assumeRoles(stack), sts + 1, 'an operator\'s re-verify calls STS')
})

t.test('rate limits per org and overall: 429 problem+json with Retry-After, nothing stored', async t => {
  const stack = await startStack(t, { env: { CHECK_ORG_PER_MINUTE: '3', CHECK_TOTAL_PER_MINUTE: '5' } })
  const a = []
  for (let i = 1; i <= 4; i++) a.push((await check(stack, String(i))).status)
  t.same(a, [204, 204, 204, 429], 'org A: three a minute')
  const b = []
  for (let i = 11; i <= 13; i++) b.push((await check(stack, String(i), OWN, '1111111')).status)
  t.same(b, [204, 204, 429], 'org B: the overall limit of five')
  const limited = await check(stack, '20')
  t.equal(limited.status, 429)
  t.match(limited.headers.get('content-type'), /application\/problem\+json/)
  t.ok(Number(limited.headers.get('retry-after')) >= 1 && Number(limited.headers.get('retry-after')) <= 60)
  const rows = await inboxStates(stack)
  t.equal(rows.length, 5, 'only the admitted checks were stored')
  t.equal((await getJson(`${stack.url}/api/cloudoreg/v1/sources`)).status, 200, 'the status API is not limited')
})
