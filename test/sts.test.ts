import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts'
import t from 'tap'
import { callerIdentityTarget, createRoleVerifier, roleSessionName, type RoleVerifier } from '../src/aws/sts.js'
import { UpstreamError } from '../src/upstream/errors.js'
import { FakeSts } from './helpers/fake-sts.js'
import type { FakeReply, FaultKind, RecordedRequest } from './helpers/fake-http.js'

const ROLE = 'arn:aws:iam::123456789012:role/redhat-cloud-meter'
const KEY = { accessKeyId: 'ASIAEXAMPLEKEY000001', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', sessionToken: 'FwoGZXIvYXdzEXAMPLE//token+with/chars=' }

interface SdkRequest { method: string, protocol: string, hostname: string, port?: number, path: string, query: Record<string, string>, headers: Record<string, string>, body: string }

/** The GetCallerIdentity request the SDK would send from `client`, signed by the SDK, captured instead of sent. */
async function sdkSigned (region: string, endpoint: string | undefined): Promise<SdkRequest> {
  let captured: SdkRequest | undefined
  const client = new STSClient({
    region,
    endpoint,
    credentials: KEY,
    maxAttempts: 1,
    requestHandler: {
      handle: async (request: SdkRequest) => {
        captured = { ...request, headers: { ...request.headers }, body: String(request.body) }
        throw new Error('captured, not sent')
      }
    }
  })
  await client.send(new GetCallerIdentityCommand({})).catch(() => {})
  if (captured === undefined) throw new Error('the SDK sent nothing')
  return captured
}

t.test('GetCallerIdentity goes where the SDK would send it, signed as the SDK signs', async t => {
  const cases: Array<[string, string | undefined]> = [
    ['eu-west-1', undefined],
    // A custom endpoint with a path that needs escaping (signed escaped once more).
    ['us-east-1', 'http://127.0.0.1:4566/prefix path/'],
    ['cn-north-1', undefined],
    // The global endpoint signs for another region than the client's.
    ['aws-global', undefined]
  ]
  for (const [region, endpoint] of cases) {
    const sent = await sdkSigned(region, endpoint)
    const target = await callerIdentityTarget(new STSClient({ region, endpoint, credentials: KEY }))
    t.equal(target.url.href, `${sent.protocol}//${sent.hostname}${sent.port === undefined ? '' : `:${sent.port}`}${sent.path}`, `the SDK's URL at ${endpoint ?? region}`)
    // The SDK's request signed again by our signer, at the SDK's time: the same signature.
    const { authorization, ...unsigned } = sent.headers
    const at = sent.headers['x-amz-date'].replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z')
    const signed = await target.signer(KEY).sign({ ...sent, headers: unsigned }, { signingDate: new Date(at) })
    t.equal(signed.headers.authorization, authorization, `the SDK's signature at ${endpoint ?? region}`)
  }
})

/** The fake STS, with GetCallerIdentity answering `reply` or failing with `fault` when set. */
class GciFaults extends FakeSts {
  reply: FakeReply | undefined
  fault: FaultKind | undefined

  protected observe (req: RecordedRequest): void {
    super.observe(req)
    if (this.fault !== undefined && new URLSearchParams(req.rawBody).get('Action') === 'GetCallerIdentity') this.failNext(1, this.fault)
  }

  protected route (req: RecordedRequest): FakeReply {
    if (this.reply !== undefined && new URLSearchParams(req.rawBody).get('Action') === 'GetCallerIdentity') return this.reply
    return super.route(req)
  }
}

const xmlError = (status: number, code: string): FakeReply => ({
  status,
  contentType: 'text/xml',
  body: `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>${code}</Code><Message>m</Message></Error><RequestId>r</RequestId></ErrorResponse>`
})

t.test('GetCallerIdentity: signed with the session, sent where AssumeRole went, failures mapped', async t => {
  const sts = await new GciFaults().listen()
  const before = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY }
  process.env.AWS_ACCESS_KEY_ID = 'AKIDSTSTEST'
  process.env.AWS_SECRET_ACCESS_KEY = 'sts-test-secret'
  const verifier = createRoleVerifier({ region: 'eu-central-1', endpoint: sts.url, timeoutMs: 500, attempts: 1, maxSockets: 4 })
  t.teardown(async () => {
    verifier.close()
    await sts.close()
    process.env.AWS_ACCESS_KEY_ID = before.id
    process.env.AWS_SECRET_ACCESS_KEY = before.secret
    if (before.id === undefined) delete process.env.AWS_ACCESS_KEY_ID
    if (before.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY
  })
  const verify = async (): ReturnType<RoleVerifier['verifyRole']> => verifier.verifyRole({ roleArn: ROLE, awsAccountId: '123456789012', externalId: 'ext', sessionName: 'cloudoreg-123456789012' })

  t.same(await verify(), { ok: true, assumedRoleArn: 'arn:aws:sts::123456789012:assumed-role/redhat-cloud-meter/cloudoreg-123456789012' })
  const [assume, whoami] = sts.requests
  t.equal(new URLSearchParams(whoami.rawBody).get('Action'), 'GetCallerIdentity')
  t.equal(whoami.path, assume.path)
  t.equal(whoami.headers.host, assume.headers.host)
  const issued = sts.issued.get(sts.calls[1].accessKeyId!)
  t.ok(issued, 'signed with the credentials AssumeRole issued')
  t.equal(whoami.headers['x-amz-security-token'], issued!.sessionToken)
  t.match(whoami.headers.authorization, /^AWS4-HMAC-SHA256 Credential=ASIA\w+\/\d{8}\/eu-central-1\/sts\/aws4_request, SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=[0-9a-f]{64}$/)
  t.match(assume.headers.authorization, /Credential=AKIDSTSTEST\/\d{8}\/eu-central-1\/sts\/aws4_request/)

  sts.notAssumed.add(ROLE)
  t.match(await verify(), { ok: false, code: 'CG3003' })
  sts.notAssumed.clear()

  sts.reply = xmlError(403, 'AccessDenied')
  t.match(await verify(), { ok: false, code: 'CG3002', reason: 'GetCallerIdentity: access denied' })
  // The session's credentials, not cloudoreg's: a refusal of them is the customer's role, not our configuration.
  sts.reply = xmlError(403, 'InvalidClientTokenId')
  t.match(await verify(), { ok: false, code: 'CG3000', reason: 'GetCallerIdentity: InvalidClientTokenId' })
  sts.reply = xmlError(400, 'Throttling')
  // Our rate, not the event's fault: a kind of its own, which spends no event attempt.
  await t.rejects(verify(), Object.assign(new UpstreamError('sts', 'throttled', 'GetCallerIdentity failed: Throttling', 400), { errorName: 'Throttling' }))
  sts.reply = { status: 502, contentType: 'text/html', body: '<html>bad gateway</html>' }
  await t.rejects(verify(), { kind: 'transient', message: 'GetCallerIdentity failed: HTTP502' })
  sts.reply = { status: 200, contentType: 'text/xml', body: '<GetCallerIdentityResponse><GetCallerIdentityResult></GetCallerIdentityResult></GetCallerIdentityResponse>' }
  t.match(await verify(), { ok: false, code: 'CG3003' }, 'no ARN is no assumed role')
  sts.reply = undefined

  sts.fault = 'reset'
  await t.rejects(verify(), { kind: 'transient', message: /GetCallerIdentity failed: ECONNRESET$/ })
  sts.fault = 'hang'
  const started = Date.now()
  await t.rejects(verify(), { kind: 'transient', message: 'GetCallerIdentity failed: TimeoutError' })
  t.ok(Date.now() - started < 5000, 'gives up after timeoutMs')
  sts.fault = undefined

  t.match(await verify(), { ok: true }, 'and works again')
})

t.test('the RoleSessionName names the source and the event, within STS\'s 64 characters of [\\w+=,.@-]', async t => {
  t.equal(roleSessionName('7', 42), 'cloudoreg-s7-e42')
  const long = roleSessionName('1'.repeat(80), 9_007_199_254_740_991)
  t.equal(long.length, 64)
  t.ok(long.endsWith('-e9007199254740991'), 'the event id is kept whole')
  t.match(roleSessionName('a b/c', 1), /^[\w+=,.@-]{2,64}$/)
})
