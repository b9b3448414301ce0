import t from 'tap'
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts'
import { startFakeSources } from './fake-sources.js'
import { startFakeRhsm } from './fake-rhsm.js'
import { startFakeSts } from './fake-sts.js'
import { fixturesDir, readFixture } from './fixtures.js'

const ROLE = 'arn:aws:iam::123456789012:role/redhat-cloud-meter'
const POLICY = JSON.stringify({
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Action: 'sts:GetCallerIdentity', Resource: '*' }],
})

async function getJson (url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, { headers })
  const text = await res.text()
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) }
}

t.test('fixtures resolve', async (t) => {
  t.match(fixturesDir, /test\/fixtures$/)
  t.equal(readFixture('sources-api/application.42.json').id, '42')
})

t.test('fake sources-api', async (t) => {
  const src = await startFakeSources()
  t.teardown(() => src.close())
  src.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE, externalId: 'ext-1' })
  src.addSource({ sourceId: '7', applicationId: '43', authenticationId: '312', arn: ROLE, applicationTypeId: '2' })
  const h = { 'x-rh-sources-psk': 'test-psk', 'x-rh-sources-org-id': '7654321' }
  const api = `${src.url}/api/sources/v3.1`

  for (const q of ['filter[name]=/insights/platform/cloud-meter', 'filter%5Bname%5D=%2Finsights%2Fplatform%2Fcloud-meter']) {
    const types = await getJson(`${api}/application_types?${q}`, h)
    const fixture = readFixture('sources-api/application_types.cloud-meter.json')
    t.same(types.body, { ...fixture, links: {} }, q)
  }
  t.match((await getJson(`${api}/application_types?filter[name]=nope`, h)).body, { meta: { count: 0 }, data: [] })

  const app = await getJson(`${api}/applications/42`, h)
  t.equal(app.status, 200)
  t.same(Object.keys(app.body as object).sort(), Object.keys(readFixture('sources-api/application.42.json')).sort())
  t.match(app.body, { id: '42', source_id: '7', application_type_id: '5' })

  const auth = await getJson(`${src.url}/internal/v2.0/authentications/311?expose_encrypted_attribute[]=password`, h)
  t.same(Object.keys(auth.body as object).sort(), Object.keys(readFixture('sources-api/authentication.311.internal.json')).sort())
  t.match(auth.body, { authtype: 'cloud-meter-arn', username: ROLE, password: '', extra: { external_id: 'ext-1' }, resource_type: 'Application', resource_id: '42' })

  const links = await getJson(`${api}/application_authentications?filter%5Bauthentication_id%5D=311`, h)
  t.match(links.body, { meta: { count: 1, limit: 100, offset: 0 }, links: {}, data: [{ application_id: '42', authentication_id: '311' }] })

  const apps = await getJson(`${api}/sources/7/applications`, h)
  t.match(apps.body, { meta: { count: 2 }, data: [{ id: '42' }, { id: '43', application_type_id: '2' }] })

  const patch = await fetch(`${api}/applications/42`, {
    method: 'PATCH',
    headers: { ...h, 'content-type': 'application/json' },
    body: JSON.stringify({ availability_status: 'available', availability_status_error: '' }),
  })
  t.equal(patch.status, 204)
  t.same(src.patches, [{ applicationId: '42', body: { availability_status: 'available', availability_status_error: '' } }])
  t.equal(src.applications.get('42')?.availability_status, 'available')

  const error404 = readFixture('sources-api/error.404.json')
  t.same(await getJson(`${api}/applications/999`, h), { status: 404, body: error404 })
  t.same(await getJson(`${src.url}/internal/v2.0/authentications/999`, h), { status: 404, body: error404 })
  t.equal((await getJson(`${api}/sources/999/applications`, h)).status, 404)
  t.equal((await getJson(`${api}/applications/42`)).status, 401, 'no psk')
  t.equal((await getJson(`${api}/applications/42`, { 'x-rh-sources-psk': 'wrong' })).status, 401, 'bad psk')

  const last = src.requests.at(-1)
  t.match(last, { method: 'GET', path: '/api/sources/v3.1/applications/42', query: '', headers: { 'x-rh-sources-psk': 'wrong' } })
  t.type(last?.at, 'number')
  t.match(src.requests.find((r) => r.method === 'PATCH'), { body: { availability_status: 'available' } })
})

t.test('fault injection', async (t) => {
  const src = await startFakeSources({ psk: 'p' })
  t.teardown(() => src.close())
  src.addSource({ sourceId: '1', applicationId: '2', authenticationId: '3', arn: ROLE })
  const url = `${src.url}/api/sources/v3.1/applications/2`
  const h = { 'x-rh-sources-psk': 'p' }

  src.failNext(1, 503)
  src.failNext(1, 401)
  src.failNext(1, 'reset')
  t.equal((await getJson(url, h)).status, 503)
  t.equal((await getJson(url, h)).status, 401)
  await t.rejects(fetch(url, { headers: h }), 'reset')
  t.equal((await getJson(url, h)).status, 200)
  t.equal(src.faultsInjected, 3)

  src.failNext(1, 'hang')
  const started = Date.now()
  await t.rejects(fetch(url, { headers: h, signal: AbortSignal.timeout(200) }), { name: 'TimeoutError' })
  t.ok(Date.now() - started < 2000)

  src.delayMs = 150
  const t0 = Date.now()
  t.equal((await getJson(url, h)).status, 200)
  t.ok(Date.now() - t0 >= 140, 'delayMs applied')
  src.delayMs = 0

  const runs = async (seed: number): Promise<string[]> => {
    const f = await startFakeSources({ psk: 'p', seed, failureRate: 0.5, hangMs: 50 })
    f.addSource({ sourceId: '1', applicationId: '2', authenticationId: '3', arn: ROLE })
    const out: string[] = []
    for (let i = 0; i < 12; i++) {
      out.push(await getJson(`${f.url}/api/sources/v3.1/applications/2`, h).then((r) => String(r.status), () => 'reset'))
    }
    t.ok(f.faultsInjected > 0 && f.faultsInjected < 12, `some faults (${f.faultsInjected})`)
    await f.close()
    return out
  }
  t.same(await runs(42), await runs(42), 'same seed, same faults')
})

t.test('close() is prompt with a hanging request open', async (t) => {
  const src = await startFakeSources()
  src.addSource({ sourceId: '1', applicationId: '2', authenticationId: '3', arn: ROLE })
  src.failNext(1, 'hang')
  const pending = fetch(`${src.url}/api/sources/v3.1/applications/2`, { headers: { 'x-rh-sources-psk': 'test-psk' } })
  while (src.requests.length === 0) await new Promise((resolve) => setTimeout(resolve, 5))
  const t0 = Date.now()
  await src.close()
  t.ok(Date.now() - t0 < 500, `closed in ${Date.now() - t0}ms`)
  await t.rejects(pending)
})

t.test('fake RHSM', async (t) => {
  const rhsm = await startFakeRhsm()
  t.teardown(() => rhsm.close())
  t.match(rhsm.url, /^http:\/\/127\.0\.0\.1:\d+\/v1$/)
  const fixture = readFixture('rhsm/add-provider-account.json')
  const post = (org: string | undefined, body: unknown): Promise<Response> =>
    fetch(`${rhsm.url}/cloud_access_providers/AWS/accounts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(org ? { 'X-RhsmApi-AccountID': org } : {}) },
      body: JSON.stringify(body),
    })
  const del = (org: string | undefined, sourceId: string): Promise<Response> =>
    fetch(`${rhsm.url}/cloud_access_providers/accounts?sourceID=${sourceId}`, {
      method: 'DELETE',
      headers: org ? { 'X-RhsmApi-AccountID': org } : {},
    })

  t.equal((await post('7654321', fixture.request_body)).status, 204)
  t.equal((await post('7654321', fixture.request_body)).status, 204, 'replace is idempotent')
  t.same(rhsm.mappings.get('7'), { awsAccountId: '123456789012', orgId: '7654321' })
  t.equal(rhsm.postsBySource.get('7'), 2)

  const conflict = await post('1111111', [{ ...fixture.request_body[0], sourceId: '8' }])
  t.equal(conflict.status, 400)
  t.same(await conflict.json(), fixture.error_example.body)
  t.notOk(rhsm.mappings.has('8'))

  t.equal((await post(undefined, fixture.request_body)).status, 400, 'missing header')
  t.equal((await del(undefined, '7')).status, 400, 'missing header')
  t.equal((await del('7654321', '7')).status, 204)
  t.equal((await del('7654321', '7')).status, 404)
  t.equal(rhsm.mappings.size, 0)

  const rec = rhsm.requests[0]
  t.match(rec, { method: 'POST', path: '/v1/cloud_access_providers/AWS/accounts', headers: { 'x-rhsmapi-accountid': '7654321' }, body: fixture.request_body })
  t.match(rhsm.requests.at(-1), { method: 'DELETE', path: '/v1/cloud_access_providers/accounts', query: 'sourceID=7' })

  rhsm.failNext(1, 503)
  t.equal((await post('7654321', fixture.request_body)).status, 503)
  t.equal(rhsm.faultsInjected, 1)
  t.equal(rhsm.postsBySource.get('7'), 2, 'faulted POST did not reach RHSM')
})

t.test('fake STS with the real SDK', async (t) => {
  const sts = await startFakeSts()
  t.teardown(() => sts.close())
  const client = new STSClient({ region: 'us-east-1', endpoint: sts.url, credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'x' } })
  t.teardown(() => client.destroy())

  const out = await client.send(
    new AssumeRoleCommand({ RoleArn: ROLE, RoleSessionName: 'cloudoreg-123456789012', ExternalId: 'ext-1', Policy: POLICY })
  )
  t.equal(out.AssumedRoleUser?.Arn, 'arn:aws:sts::123456789012:assumed-role/redhat-cloud-meter/cloudoreg-123456789012')
  t.match(out.Credentials?.AccessKeyId, /^ASIA/)
  t.ok(out.Credentials?.Expiration instanceof Date)
  const ttl = (out.Credentials?.Expiration?.getTime() ?? 0) - Date.now()
  t.ok(ttl > 3500_000 && ttl <= 3600_000, 'expires in an hour')
  t.match(sts.calls[0], {
    action: 'AssumeRole',
    accessKeyId: 'AKIDTEST',
    params: { Action: 'AssumeRole', Version: '2011-06-15', RoleArn: ROLE, RoleSessionName: 'cloudoreg-123456789012', ExternalId: 'ext-1', Policy: POLICY },
  })

  const creds = out.Credentials!
  const tempClient = new STSClient({
    region: 'us-east-1',
    endpoint: sts.url,
    maxAttempts: 1,
    credentials: { accessKeyId: creds.AccessKeyId!, secretAccessKey: creds.SecretAccessKey!, sessionToken: creds.SessionToken! },
  })
  t.teardown(() => tempClient.destroy())
  const who = await tempClient.send(new GetCallerIdentityCommand({}))
  t.equal(who.Arn, out.AssumedRoleUser?.Arn)
  t.equal(who.Account, '123456789012')
  t.match(who.$metadata.requestId, /^[0-9a-f-]{36}$/)
  t.equal(sts.calls[1].accessKeyId, creds.AccessKeyId)

  const second = await client.send(new AssumeRoleCommand({ RoleArn: ROLE, RoleSessionName: 'cloudoreg-123456789012' }))
  t.not(second.Credentials?.AccessKeyId, creds.AccessKeyId, 'unique keys')

  t.match(await client.send(new GetCallerIdentityCommand({})), { Arn: 'arn:aws:iam::998877665544:user/cloudoreg', Account: '998877665544' })

  sts.notAssumed.add(ROLE)
  t.equal((await tempClient.send(new GetCallerIdentityCommand({}))).Arn, 'arn:aws:iam::123456789012:user/x')

  sts.deny.add(ROLE)
  await t.rejects(client.send(new AssumeRoleCommand({ RoleArn: ROLE, RoleSessionName: 's1' })), {
    name: 'AccessDenied',
    $metadata: { httpStatusCode: 403 },
  })

  const oneShot = new STSClient({ region: 'us-east-1', endpoint: sts.url, maxAttempts: 1, credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'x' } })
  t.teardown(() => oneShot.destroy())
  sts.throttleNext(1)
  await t.rejects(oneShot.send(new GetCallerIdentityCommand({})), { name: 'Throttling', $metadata: { httpStatusCode: 400 } })

  sts.failNext(1, 503)
  await t.rejects(oneShot.send(new GetCallerIdentityCommand({})), { name: 'ServiceUnavailable', $metadata: { httpStatusCode: 503 } })

  sts.failNext(1, 'hang')
  await t.rejects(oneShot.send(new GetCallerIdentityCommand({}), { abortSignal: AbortSignal.timeout(200) }), { name: 'AbortError' })

  // The SDK reports a connection reset as a TimeoutError ("socket hang up"), not a network error.
  sts.failNext(1, 'reset')
  await t.rejects(oneShot.send(new GetCallerIdentityCommand({})), { name: 'TimeoutError' })
})
