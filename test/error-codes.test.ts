import t from 'tap'
import { eventually, getJson, inboxStates, pushNative, startStack, type Stack } from './helpers/stack.js'

let nextId = 1000

interface Case {
  code: string | null
  arrange: (stack: Stack, ids: { sourceId: string, applicationId: string, authenticationId: string, arn: string }) => void
}

const arn = (account: string): string => `arn:aws:iam::${account}:role/redhat-cloud-meter`

const cases: Record<string, Case> = {
  'authentication gone → CG2000': { code: 'CG2000', arrange: (s, i) => { s.sources.authentications.delete(i.authenticationId) } },
  'unsupported authtype → CG2001': { code: 'CG2001', arrange: (s, i) => { s.sources.authentications.get(i.authenticationId)!.authtype = 'arn' } },
  'authentication not on an Application → CG2002': { code: 'CG2002', arrange: (s, i) => { s.sources.authentications.get(i.authenticationId)!.resource_type = 'Source' } },
  'no ARN in username or password → CG2004': { code: 'CG2004', arrange: (s, i) => { s.sources.authentications.get(i.authenticationId)!.username = '' } },
  'malformed ARN → CG1004': { code: 'CG1004', arrange: (s, i) => { s.sources.authentications.get(i.authenticationId)!.username = 'arn:aws:iam::1234:role/x' } },
  'AWS access denied → CG3002': { code: 'CG3002', arrange: (s, i) => { s.sts.deny.add(i.arn) } },
  'not an assumed role → CG3003': { code: 'CG3003', arrange: (s, i) => { s.sts.notAssumed.add(i.arn) } },
  'other AWS failure → CG3000': { code: 'CG3000', arrange: (s, i) => { s.sts.errorFor.set(i.arn, 'RegionDisabledException') } },
  'account mapped to another org in RHSM → CR4001': {
    code: 'CR4001',
    arrange: (s, i) => { s.rhsm.mappings.set('elsewhere', { awsAccountId: i.arn.split(':')[4], orgId: '999' }) }
  },
  'other RHSM 4xx → CR4000 with its reason': { code: 'CR4000', arrange: (s, i) => { s.rhsm.rejectAccount.set(i.arn.split(':')[4], 'account id is on a deny list') } },
  'ARN in password when username is blank → registered': {
    code: null,
    arrange: (s, i) => {
      const auth = s.sources.authentications.get(i.authenticationId)!
      auth.password = auth.username
      auth.username = ''
    }
  }
}

t.test('each customer-facing failure ends unavailable with its code, in the status and the REST state', async t => {
  const stack = await startStack(t)
  const expectations: Array<[string, Case, string]> = []
  for (const [name, c] of Object.entries(cases)) {
    const n = nextId++
    const ids = { sourceId: String(n), applicationId: String(n + 10_000), authenticationId: String(n + 20_000), arn: arn(String(100_000_000_000 + n)) }
    stack.sources.addSource({ ...ids, externalId: 'ext-' + n })
    c.arrange(stack, ids)
    t.equal((await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: Number(ids.applicationId), authentication_id: Number(ids.authenticationId) })).status, 202)
    expectations.push([name, c, ids.sourceId])
  }
  await eventually(async () => (await inboxStates(stack)).every(r => r.state === 'done') ? true : undefined)
  await eventually(() => stack.sources.patches.length >= expectations.length ? true : undefined)

  for (const [name, c, sourceId] of expectations) {
    const { status, body } = await getJson(`${stack.url}/api/cloudoreg/v1/sources/${sourceId}`)
    t.equal(status, 200, name)
    const patch = stack.sources.patches.find(p => p.applicationId === body.application_id)?.body as Record<string, string>
    if (c.code === null) {
      t.equal(body.state, 'registered', name)
      t.same(patch, { availability_status: 'available', availability_status_error: '' }, name)
      continue
    }
    t.equal(body.state, 'unavailable', name)
    t.equal(body.error.code, c.code, name)
    t.match(body.error.message, new RegExp(`^Could not enable cloud metering\\. Error code ${c.code}\\. `), name)
    t.equal(patch.availability_status, 'unavailable', name)
    t.equal(patch.availability_status_error, body.error.message, `${name}: the same text goes to sources-api`)
  }
  const cr4000 = stack.sources.patches.find(p => (p.body as Record<string, string>).availability_status_error.includes('CR4000'))
  t.match((cr4000?.body as Record<string, string>).availability_status_error, /RHSM said: account id is on a deny list/)
  t.equal(stack.rhsm.requests.filter(r => r.method === 'POST').length, 3, 'RHSM is asked only after STS verified the role')
})

t.test('transient failures are retried per call and per event, then succeed', async t => {
  const stack = await startStack(t, { env: { UPSTREAM_CALL_ATTEMPTS: '2' } })
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: arn('123456789012') })
  stack.sources.failNext(3, 503)
  stack.sts.throttleNext(5)
  stack.rhsm.failNext(1, 'reset')
  await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 42, authentication_id: 311 })
  const body = await eventually(async () => {
    const r = await getJson(`${stack.url}/api/cloudoreg/v1/sources/7`)
    return r.status === 200 && r.body.state === 'registered' ? r.body : undefined
  })
  t.ok(body.attempts > 1, `took ${body.attempts} event attempts`)
  t.equal(stack.rhsm.mappings.get('7')?.awsAccountId, '123456789012')
  const [row] = await inboxStates(stack)
  t.equal(row.state, 'done')
  t.equal(row.attempts, body.attempts)
})

t.test('an event that keeps failing ends with CR5000 after RETRY_MAX_ATTEMPTS; later events of the source go on', async t => {
  const stack = await startStack(t, { env: { RETRY_MAX_ATTEMPTS: '3', UPSTREAM_CALL_ATTEMPTS: '1' } })
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: arn('123456789012') })
  stack.sts.failureRate = 1
  await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 42, authentication_id: 311 })
  const [row] = await eventually(async () => {
    const rows = await inboxStates(stack)
    return rows[0]?.state === 'dead' ? rows : undefined
  })
  t.equal(row.attempts, 3)
  const { body } = await getJson(`${stack.url}/api/cloudoreg/v1/sources/7`)
  t.equal(body.state, 'unavailable')
  t.equal(body.error.code, 'CR5000')
  await eventually(() => stack.sources.patches.length > 0 ? true : undefined)
  t.match((stack.sources.patches[0].body as Record<string, string>).availability_status_error, /Error code CR5000/)

  stack.sts.failureRate = 0
  await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 42, authentication_id: 311, id: 2 })
  await eventually(async () => (await getJson(`${stack.url}/api/cloudoreg/v1/sources/7`)).body.state === 'registered' ? true : undefined)
})

t.test('our own credentials refused: retried, counted, logged, never reported to the customer', async t => {
  const stack = await startStack(t, { env: { RETRY_MAX_ATTEMPTS: '2', SOURCES_PSK: 'wrong-psk-0000' } })
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: arn('123456789012') })
  await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 42, authentication_id: 311 })
  await eventually(async () => (await inboxStates(stack))[0]?.attempts >= 4 ? true : undefined, 20_000, 'several attempts')
  const [row] = await inboxStates(stack)
  t.equal(row.state, 'pending', 'still waiting for an operator, past RETRY_MAX_ATTEMPTS')
  t.equal(stack.sources.patches.length, 0, 'nothing reported')
  const metrics = await (await fetch(`${stack.url}/metrics`)).text()
  t.match(metrics, /cloudoreg_misconfiguration_total\{target="sources"\} [1-9]/)
  t.ok(stack.logs.some(l => l.includes('refused cloudoreg\'s own credentials') && l.includes('"level":50')), 'an error is logged')
})
