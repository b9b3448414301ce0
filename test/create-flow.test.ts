import t from 'tap'
import { readFixture } from './helpers/fixtures.js'
import { eventually, getJson, identities, inboxStates, ORG, outboxSettled, pushNative, startStack, type Stack } from './helpers/stack.js'

const create = readFixture('events/app-auth-create.json')
const rhsmFixture = readFixture('rhsm/add-provider-account.json')
const ROLE = 'arn:aws:iam::123456789012:role/redhat-cloud-meter'
const EXTERNAL_ID = '6f1b0c2e-2f61-4a3e-9a51-0c9c1d2d5b77'

function addFixtureSource (stack: Stack, overrides: Record<string, string> = {}): void {
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE, externalId: EXTERNAL_ID, ...overrides })
}

async function ended (stack: Stack, count: number): Promise<void> {
  await eventually(async () => {
    const rows = await inboxStates(stack)
    return rows.length >= count && rows.every(r => r.state !== 'pending') ? true : undefined
  }, 20_000, `${count} events to end`)
}

async function patches (stack: Stack, n: number): Promise<unknown[]> {
  return eventually(() => stack.sources.patches.length >= n ? stack.sources.patches.map(p => p.body) : undefined, 20_000, 'status PATCH')
}

t.test('create: verified, mapped in RHSM, reported available, readable over REST', async t => {
  const stack = await startStack(t)
  addFixtureSource(stack)

  const res = await pushNative(stack.url, 'ApplicationAuthentication.create', create.body)
  t.equal(res.status, 202)
  t.equal(await res.text(), '', '202 has an empty body')
  await ended(stack, 1)

  // sources-api: PSK and tenant headers on every call, the ARN read back over REST
  const reads = stack.sources.requests.filter(r => r.method === 'GET')
  t.same(reads.map(r => r.path), [
    '/api/sources/v3.1/application_types',
    '/api/sources/v3.1/applications/42',
    '/internal/v2.0/authentications/311'
  ])
  for (const r of reads) {
    t.equal(r.headers['x-rh-sources-psk'], 'sources-psk-secret-7f3a')
    t.equal(r.headers['x-rh-sources-org-id'], ORG)
    t.equal(r.headers['x-rh-sources-account-number'], '1234567')
  }
  t.match(reads[2].query, /expose_encrypted_attribute(\[\]|%5B%5D)=password/)

  // STS: AssumeRole with session name, external id and a GetCallerIdentity-only policy, then the assumed session asks who it is
  t.same(stack.sts.calls.map(c => c.action), ['AssumeRole', 'GetCallerIdentity'])
  const [assume, whoami] = stack.sts.calls
  t.equal(assume.params.RoleArn, ROLE)
  // The session names the source and the event, so the customer's CloudTrail entry leads back to it; the history shows it.
  t.match(assume.params.RoleSessionName, /^cloudoreg-s7-e\d+$/)
  const history = await getJson(`${stack.url}/api/cloudoreg/v1/sources/7/history`)
  const entry = history.body.timeline.find((e: any) => e.kind === 'event')
  t.equal(entry.role_session_name, assume.params.RoleSessionName)
  t.match(entry.trace_id, /^[0-9a-f]{32}$/, 'an event that arrived without a trace context has a trace of its own')
  t.equal(assume.params.ExternalId, EXTERNAL_ID)
  t.same(JSON.parse(assume.params.Policy), {
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Action: 'sts:GetCallerIdentity', Resource: '*' }]
  })
  t.equal(assume.accessKeyId, 'AKIDCLOUDOREGTEST', 'AssumeRole uses the service credentials from the default chain')
  t.match(whoami.accessKeyId, /^ASIA/, 'GetCallerIdentity uses the temporary credentials')

  // RHSM: exactly the documented request
  t.equal(stack.rhsm.requests.length, 1)
  const post = stack.rhsm.requests[0]
  t.equal(post.method, 'POST')
  t.equal(post.path, '/v1/cloud_access_providers/AWS/accounts')
  t.equal(post.headers['x-rhsmapi-accountid'], ORG)
  t.match(post.headers['content-type'], /application\/json/)
  t.same(post.body, rhsmFixture.request_body)

  // status reported back (HTTP sink here; the Kafka sink has its own test)
  t.same(await patches(stack, 1), [{ availability_status: 'available', availability_status_error: '' }])
  t.equal(stack.sources.patches[0].applicationId, '42')

  const one = await getJson(`${stack.url}/api/cloudoreg/v1/sources/7`)
  t.equal(one.status, 200)
  t.match(one.body, {
    source_id: '7',
    application_id: '42',
    authentication_id: '311',
    org_id: ORG,
    account_number: '1234567',
    aws_account_id: '123456789012',
    role_arn: ROLE,
    state: 'registered',
    mapped: true,
    availability_status: 'available',
    error: null,
    attempts: 1
  })
  t.type(one.body.verified_at, 'string')
  t.notOk(JSON.stringify(one.body).includes(EXTERNAL_ID), 'the external id is not exposed')

  const list = await getJson(`${stack.url}/api/cloudoreg/v1/sources`)
  t.equal(list.body.meta.count, 1)
  t.equal(list.body.data[0].source_id, '7')

  t.same(await (await fetch(`${stack.url}/healthz`)).json(), { status: 'ok' })
  t.match(await (await fetch(`${stack.url}/readyz`)).json(), { status: 'ready', processing: true })
  const metrics = await (await fetch(`${stack.url}/metrics`)).text()
  const type = 'type="ApplicationAuthentication.create"'
  t.match(metrics, new RegExp(`cloudoreg_events_received_total\\{${type}\\} 1\\b`))
  t.match(metrics, new RegExp(`cloudoreg_events_processed_total\\{${type},outcome="done"\\} 1\\b`))
  t.match(metrics, new RegExp(`cloudoreg_event_processing_seconds_count\\{${type}\\} 1\\b`))
  t.match(metrics, /cloudoreg_upstream_call_seconds_count\{target="rhsm",outcome="ok"\} 1\b/)
  t.match(metrics, /cloudoreg_upstream_call_seconds_count\{target="sts",outcome="ok"\} 2\b/)
  for (const name of ['cloudoreg_events_failed_total', 'cloudoreg_queue_events', 'cloudoreg_queue_sources', 'cloudoreg_inbox_pending 0',
    'cloudoreg_inbox_oldest_pending_age_seconds', 'cloudoreg_outbox_unsent', 'cloudoreg_outbox_oldest_unsent_age_seconds', 'cloudoreg_misconfiguration_total']) {
    t.ok(metrics.includes(name), `metrics has ${name}`)
  }
})

t.test('a redelivery is acknowledged with 200 and not processed again; an identical re-emission later is new', async t => {
  const stack = await startStack(t)
  addFixtureSource(stack)
  const knative = readFixture('events/app-auth-create.knative-binary.json')
  const send = async (): Promise<Response> => fetch(`${stack.url}/internal/v1/events`, { method: 'POST', headers: knative.http_headers, body: knative.body })
  t.equal((await send()).status, 202)
  t.equal((await send()).status, 200)
  await ended(stack, 1)
  t.equal((await send()).status, 200, 'still a duplicate after processing')
  t.equal((await inboxStates(stack)).length, 1)
  t.equal(stack.rhsm.requests.length, 1)

  // Sources-native pushes carry no delivery id: identical bodies within 60 s are one delivery...
  t.equal((await pushNative(stack.url, 'ApplicationAuthentication.create', create.body)).status, 202)
  t.equal((await pushNative(stack.url, 'ApplicationAuthentication.create', create.body)).status, 200)
  // ...and after the window the same bytes are a re-emission, a new event.
  await stack.app.store.pool.query("update delivery_keys set expires_at = now() - interval '1 second' where key like '%:hash:%'")
  t.equal((await pushNative(stack.url, 'ApplicationAuthentication.create', create.body)).status, 202)
  await ended(stack, 3)
  t.same((await inboxStates(stack)).map(r => r.outcome), ['registered', 'verified; mapping already held', 'verified; mapping already held'])
  t.equal(stack.sts.calls.filter(c => c.action === 'AssumeRole').length, 3, 'each new event re-verifies the role')
  t.equal(stack.rhsm.requests.length, 1, 'one RHSM mapping for all of them')
  // Three decided; the second may supersede the first or the third the second while unsent (one to three PATCHes).
  const outbox = await outboxSettled(stack, 3)
  t.same(outbox.map(r => r.status), ['available', 'available', 'available'], 'three available reports decided')
  t.equal(stack.sources.patches.length, outbox.filter(r => r.sent).length, 'one PATCH per sent report')
})

t.test('applications of other types and vanished applications end quietly, with no status', async t => {
  const stack = await startStack(t)
  addFixtureSource(stack, { applicationTypeId: '2' })
  t.equal((await pushNative(stack.url, 'ApplicationAuthentication.create', create.body)).status, 202)
  t.equal((await pushNative(stack.url, 'ApplicationAuthentication.create', { ...create.body, application_id: 77 })).status, 202)
  await ended(stack, 2)
  const states = await inboxStates(stack)
  t.same(states.map(s => [s.state, s.outcome]), [['done', 'not a cloud-meter application'], ['done', 'application no longer exists']])
  t.equal(stack.sts.calls.length, 0)
  t.equal(stack.rhsm.requests.length, 0)
  await new Promise(resolve => setTimeout(resolve, 300))
  t.equal(stack.sources.patches.length, 0, 'no status for them')
  t.equal((await getJson(`${stack.url}/api/cloudoreg/v1/sources/7`)).status, 404)
})

t.test('types not handled yet are stored and marked ignored', async t => {
  const stack = await startStack(t)
  for (const file of ['application-update.json', 'records-update.json', 'application-create.json']) {
    const f = readFixture(`events/${file}`)
    t.equal((await pushNative(stack.url, f.event_type, f.body)).status, 202, file)
  }
  await ended(stack, 3)
  t.same((await inboxStates(stack)).map(s => s.state), ['ignored', 'ignored', 'ignored'])
  t.equal(stack.sources.requests.length, 0)
})

t.test('status API: identity required, org-scoped, paginated', async t => {
  const stack = await startStack(t)
  for (let i = 1; i <= 5; i++) {
    stack.sources.addSource({ sourceId: String(100 + i), applicationId: String(200 + i), authenticationId: String(300 + i), arn: `arn:aws:iam::10000000000${i}:role/r` })
    await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 200 + i, authentication_id: 300 + i })
  }
  await ended(stack, 5)

  t.equal((await fetch(`${stack.url}/api/cloudoreg/v1/sources`)).status, 401)
  const bad = await fetch(`${stack.url}/api/cloudoreg/v1/sources`, { headers: { 'x-rh-identity': 'bm90IGpzb24=' } })
  t.equal(bad.status, 401)
  t.match(bad.headers.get('content-type'), /application\/problem\+json/)
  t.match(await bad.json(), { status: 401, detail: /not base64-encoded JSON/ })
  const noOrg = Buffer.from(JSON.stringify({ identity: { type: 'User' } })).toString('base64')
  t.equal((await getJson(`${stack.url}/api/cloudoreg/v1/sources`, noOrg)).status, 401)

  const page = await getJson(`${stack.url}/api/cloudoreg/v1/sources?limit=2&offset=2`)
  t.equal(page.status, 200)
  t.same(page.body.meta, { count: 5, limit: 2, offset: 2 })
  t.same(page.body.data.map((s: any) => s.source_id), ['103', '104'])
  t.equal(page.body.links.next, '/api/cloudoreg/v1/sources?limit=2&offset=4')
  t.equal(page.body.links.previous, '/api/cloudoreg/v1/sources?limit=2&offset=0')
  t.equal(page.body.links.last, '/api/cloudoreg/v1/sources?limit=2&offset=4')
  t.equal((await getJson(`${stack.url}/api/cloudoreg/v1/sources?state=unavailable`)).body.meta.count, 0)
  t.equal((await getJson(`${stack.url}/api/cloudoreg/v1/sources?limit=5000`)).status, 400)
  t.equal((await getJson(`${stack.url}/api/cloudoreg/v1/sources?state=bogus`)).status, 400)

  const other = identities.base64.user_other_org_1111111
  const theirs = await getJson(`${stack.url}/api/cloudoreg/v1/sources`, other)
  t.same(theirs.body.meta.count, 0, 'another org counts none of them')
  const hidden = await getJson(`${stack.url}/api/cloudoreg/v1/sources/101`, other)
  t.equal(hidden.status, 404, 'another org gets 404, not 403')
})
