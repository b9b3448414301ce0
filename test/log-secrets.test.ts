import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { recordSecrets } from './helpers/secrets.js'
import { eventually, identities, inboxStates, PSK, pushNative, startStack } from './helpers/stack.js'

const TOKEN = 'push-token-5ecret-f00d-0123456789abcdef'
const KEY_MATERIAL = 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKB'
recordSecrets([KEY_MATERIAL, 'wrong-token-but-logged?', 'external-id-secretish'])

t.test('no secret reaches a log line, on success and failure paths alike', async t => {
  const certDir = tmpdir()
  const keyPath = join(certDir, `cloudoreg-test-${process.pid}.key`)
  const certPath = join(certDir, `cloudoreg-test-${process.pid}.crt`)
  writeFileSync(keyPath, `-----BEGIN PRIVATE KEY-----\n${KEY_MATERIAL}\n-----END PRIVATE KEY-----\n`)
  writeFileSync(certPath, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n')
  const stack = await startStack(t, {
    env: { LOG_LEVEL: 'trace', PUSH_TOKEN: TOKEN, RHSM_CLIENT_CERT: certPath, RHSM_CLIENT_KEY: keyPath, RETRY_MAX_ATTEMPTS: '2', UPSTREAM_CALL_ATTEMPTS: '1' }
  })
  const arn = 'arn:aws:iam::123456789012:role/r'
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn, externalId: 'external-id-secretish' })
  stack.sources.addSource({ sourceId: '8', applicationId: '43', authenticationId: '312', arn: 'arn:aws:iam::123456789013:role/r' })
  stack.sts.deny.add('arn:aws:iam::123456789013:role/r')

  const bearer = { authorization: `Bearer ${TOKEN}` }
  t.equal((await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 42, authentication_id: 311 }, bearer)).status, 202)
  t.equal((await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 43, authentication_id: 312 }, { 'dapr-api-token': TOKEN })).status, 202)
  t.equal((await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 42 }, { authorization: 'Bearer wrong-token-but-logged?' })).status, 401)
  t.equal((await pushNative(stack.url, 'ApplicationAuthentication.create', '{broken' as unknown as object, bearer)).status, 400)
  stack.sources.failNext(3, 401)
  await fetch(`${stack.url}/api/cloudoreg/v1/sources/7`, { headers: { 'x-rh-identity': identities.base64.user_7654321 } })
  await eventually(async () => (await inboxStates(stack)).every(r => r.state !== 'pending') ? true : undefined)
  await eventually(() => stack.sources.patches.length >= 2 ? true : undefined)

  const issued = [...stack.sts.issued.values()]
  t.ok(issued.length > 0, 'STS issued temporary credentials')
  const secrets: Record<string, string> = {
    PSK,
    PUSH_TOKEN: TOKEN,
    'wrong bearer token': 'wrong-token-but-logged?',
    'x-rh-identity (system)': identities.base64.system_7654321,
    'x-rh-identity (user)': identities.base64.user_7654321,
    'service AWS secret key': process.env.AWS_SECRET_ACCESS_KEY!,
    'RHSM client key': KEY_MATERIAL,
    'external id': 'external-id-secretish'
  }
  for (const c of issued) {
    secrets[`temporary secret ${c.accessKeyId}`] = c.secretAccessKey
    secrets[`session token ${c.accessKeyId}`] = c.sessionToken
  }
  const logs = stack.logs.join('')
  t.ok(stack.logs.length > 20, `${stack.logs.length} log lines captured`)
  t.match(logs, /"reqId"/, 'request ids are logged')
  for (const [name, value] of Object.entries(secrets)) {
    t.notOk(logs.includes(value), `${name} is not in the logs`)
  }
})
