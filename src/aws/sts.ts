import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts'
import { getEndpointFromInstructions } from '@smithy/core/endpoints'
import { SignatureV4 } from '@smithy/signature-v4'
import { SpanKind, type Span } from '@opentelemetry/api'
import type { Gate } from '../upstream/breaker.js'
import { UpstreamError, type UpstreamErrorKind } from '../upstream/errors.js'
import type { CallOptions } from '../upstream/http.js'
import { inSpan } from '../tracing/spans.js'
import type { RateGate } from '../upstream/rate-budget.js'

// The SDK warns on the first client under Node 20 that its 2027 releases need Node 22; the lockfile pins
// a release that supports 20, and the README says which Node versions cloudoreg supports.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'

export interface StsOptions {
  region: string
  endpoint?: string
  timeoutMs: number
  attempts: number
  /** Sockets to STS at once; at least the number of verifications that can run at once. */
  maxSockets: number
  observe?: CallOptions['observe']
  /** The breaker of STS in this region: both calls of a verification go through it. */
  gate?: Gate
  /** Paces AssumeRole (each HTTP attempt, the SDK's retries included) and hears of its throttling. */
  rate?: RateGate
}

export type RoleCheck =
  | { ok: true, assumedRoleArn: string }
  | { ok: false, code: 'CG3002' | 'CG3003' | 'CG3000', reason: string, step: StsStep, awsCode: string }

export type StsStep = 'AssumeRole' | 'GetCallerIdentity'

export interface RoleVerifier {
  /** `sessionName` is the RoleSessionName: the customer's CloudTrail shows it on the AssumeRole entry. */
  verifyRole: (r: { roleArn: string, awsAccountId: string, externalId: string, sessionName: string }) => Promise<RoleCheck>
  /**
   * The AWS account cloudoreg verifies from (GetCallerIdentity on its own credentials): the
   * principal a customer's trust policy names. Learnt once, then cached; a failure is not.
   */
  ownAccountId: () => Promise<string>
  close: () => void
}

// The assumed session can do nothing but tell us who it is.
const SESSION_POLICY = JSON.stringify({
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Action: 'sts:GetCallerIdentity', Resource: '*' }]
})

const THROTTLING = new Set(['Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequestsException'])
// Refusals of the service's own identity (not the customer's role): our misconfiguration.
const OWN_CREDENTIALS = new Set(['InvalidClientTokenId', 'SignatureDoesNotMatch', 'UnrecognizedClientException', 'CredentialsProviderError', 'ExpiredToken', 'MissingAuthenticationToken'])

interface AwsError { name: string, $metadata?: { httpStatusCode?: number } }

const SESSION_NAME_CHARS = /[^\w+=,.@-]/g

/**
 * The RoleSessionName of an event's verification: names the source and the cloudoreg event, so
 * that the AssumeRole entry in the customer's CloudTrail leads back to exactly that event (the
 * source's history shows it). STS allows 2 to 64 characters of [\w+=,.@-]; the event id is kept
 * whole and a (very) long source id is cut.
 */
export function roleSessionName (sourceId: string, eventId: number): string {
  const event = `-e${eventId}`
  return `cloudoreg-s${sourceId.replace(SESSION_NAME_CHARS, '_')}`.slice(0, 64 - event.length) + event
}

/** STS itself failing (5xx, no answer), as its breaker counts: never a customer's role, never throttling. */
export function isStsOutage (err: AwsError): boolean {
  const status = err.$metadata?.httpStatusCode
  return !THROTTLING.has(err.name) && (status === undefined || status >= 500 || err.name === 'TimeoutError')
}

/** Splits AWS failures into customer outcomes (returned) and retryable ones (thrown). */
function classify (err: AwsError, step: StsStep, gate: Gate | undefined): RoleCheck {
  // Refused by the breaker: no call was made.
  if (err instanceof UpstreamError) throw err
  const status = err.$metadata?.httpStatusCode
  let kind: UpstreamErrorKind | undefined
  if (THROTTLING.has(err.name)) kind = 'throttled'
  else if (isStsOutage(err)) kind = 'transient'
  else if (step === 'AssumeRole' && OWN_CREDENTIALS.has(err.name)) kind = 'misconfigured'
  if (kind !== undefined) {
    const e = new UpstreamError('sts', kind, `${step} failed: ${err.name}`, status)
    e.errorName = err.name
    if (kind === 'transient') e.gate = gate?.key
    throw e
  }
  if (err.name === 'AccessDenied' || err.name === 'AccessDeniedException') {
    return { ok: false, code: 'CG3002', reason: `${step}: access denied`, step, awsCode: err.name }
  }
  return { ok: false, code: 'CG3000', reason: `${step}: ${err.name}`, step, awsCode: err.name }
}

export interface SigningKey {
  accessKeyId: string
  secretAccessKey: string
  sessionToken?: string
}

/** Where the SDK would send GetCallerIdentity from a client, and how it would sign it. */
export interface CallerIdentityTarget {
  url: URL
  /** The SDK's SigV4 signer, set up as the SDK sets up its own (scope, hash, path escaping), for `key`. */
  signer: (key: SigningKey) => SignatureV4
}

/**
 * Resolved from the client's config by the SDK's own code: its endpoint rules (region, partition,
 * FIPS and dual-stack settings, a custom endpoint) and the signing scope the endpoint names, else the
 * client's region and signing name (the global endpoint signs for us-east-1, for one).
 */
export async function callerIdentityTarget (client: STSClient): Promise<CallerIdentityTarget> {
  const { config } = client
  // A copy, as the SDK's endpoint middleware passes: the resolution may write an endpoint into it.
  const endpoint = await getEndpointFromInstructions({}, GetCallerIdentityCommand, { ...config })
  const scheme = endpoint.properties?.authSchemes?.[0] as { signingRegion?: string, signingName?: string } | undefined
  const region = scheme?.signingRegion ?? await config.region()
  // Set by every generated client ('sts' here); optional only in the shared config type.
  const service = scheme?.signingName ?? config.defaultSigningName!
  return {
    url: endpoint.url,
    signer: key => new SignatureV4({ credentials: key, region, service, sha256: config.sha256, uriEscapePath: config.signingEscapePath })
  }
}

const CALLER_IDENTITY = 'Action=GetCallerIdentity&Version=2011-06-15'
const XML_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }
const tag = (xml: string, name: string): string | undefined =>
  new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1].replace(/&(amp|lt|gt|quot|apos);/g, (_, e: string) => XML_ENTITIES[e])

export function createRoleVerifier (o: StsOptions): RoleVerifier {
  // One pool of kept-alive sockets for both calls of every verification: a new agent per
  // verification would open a new connection each time, and the SDK's default allows 50 sockets.
  const agent = { keepAlive: true, maxSockets: o.maxSockets }
  const httpAgent = new HttpAgent(agent)
  const httpsAgent = new HttpsAgent(agent)
  const requestHandler = { connectionTimeout: o.timeoutMs, requestTimeout: o.timeoutMs, throwOnRequestTimeout: true, httpAgent, httpsAgent }
  const transport = { 'http:': { request: httpRequest, agent: httpAgent }, 'https:': { request: httpsRequest, agent: httpsAgent } }
  // The service's own credentials come from the SDK's default chain.
  const client = new STSClient({ region: o.region, endpoint: o.endpoint, maxAttempts: o.attempts, requestHandler })
  const rate = o.rate
  if (rate !== undefined) {
    // Inside the SDK's retry middleware (finalizeRequest, high priority): once per HTTP attempt.
    client.middlewareStack.add((next, context) => async args => {
      if (context.commandName !== 'AssumeRoleCommand') return await next(args)
      await rate.take()
      try {
        return await next(args)
      } catch (err) {
        if (THROTTLING.has((err as AwsError).name)) rate.throttled()
        throw err
      }
    }, { step: 'finalizeRequest', priority: 'low', name: 'cloudoreg-assume-role-rate' })
  }
  let target: Promise<CallerIdentityTarget> | undefined
  const gated = <T>(fn: () => Promise<T>): Promise<T> => o.gate === undefined ? fn() : o.gate.run(fn)

  /**
   * One STS call, timed and in a client span named as the AWS SDK's instrumentation names them
   * (`STS.AssumeRole`): the HTTP status and the AWS error code, never the role's external id.
   */
  async function timed<T> (method: 'AssumeRole' | 'GetCallerIdentity', attributes: Record<string, string>, fn: () => Promise<T>, statusOf: (result: T) => number | undefined): Promise<T> {
    const spanAttributes = { 'rpc.system': 'aws-api', 'rpc.service': 'STS', 'rpc.method': method, 'cloud.region': o.region, ...attributes }
    return inSpan(`STS.${method}`, { kind: SpanKind.CLIENT, attributes: spanAttributes }, async (span: Span) => {
      const started = process.hrtime.bigint()
      try {
        const result = await fn()
        o.observe?.('sts', 'ok', Number(process.hrtime.bigint() - started) / 1e9)
        span.setAttribute('http.response.status_code', statusOf(result) ?? 200)
        return result
      } catch (err) {
        o.observe?.('sts', 'error', Number(process.hrtime.bigint() - started) / 1e9)
        const status = (err as AwsError).$metadata?.httpStatusCode
        if (status !== undefined) span.setAttribute('http.response.status_code', status)
        throw err
      }
    }, err => (err as AwsError).name)
  }

  /**
   * GetCallerIdentity signed with the session's credentials. SDK v3 binds credentials to a client,
   * and building one per verification cost more CPU than the rest of the verification: the call is
   * one fixed Query request, signed here and sent on the same agents. Failures reject with the
   * SDK's shape (`name` = the AWS error code, `$metadata.httpStatusCode`).
   */
  async function callerIdentity (key: Required<SigningKey>): Promise<string> {
    target ??= callerIdentityTarget(client)
    const { url, signer } = await target
    const { headers } = await signer(key).sign({
      method: 'POST',
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port === '' ? undefined : Number(url.port),
      path: url.pathname,
      query: {},
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(CALLER_IDENTITY.length), host: url.host },
      body: CALLER_IDENTITY
    }, {
      // Corrected by the clock skew the SDK learnt from AWS's answers, as the SDK signs.
      signingDate: new Date(Date.now() + client.config.systemClockOffset)
    })
    const { request, agent } = transport[url.protocol as keyof typeof transport]
    return new Promise((resolve, reject) => {
      // Network failures carry their code (ECONNRESET, TimeoutError...) as the name, as the SDK's do.
      const failed = (err: Error & { code?: string }): void => reject(Object.assign(err, { name: err.code ?? err.name }))
      const req = request(url, { method: 'POST', agent, headers }, (res: IncomingMessage) => {
        let xml = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => { xml += chunk })
        res.on('error', failed)
        res.on('end', () => {
          const status = res.statusCode!
          if (status >= 200 && status < 300) return resolve(tag(xml, 'Arn') ?? '')
          reject(Object.assign(new Error(tag(xml, 'Message') ?? `HTTP ${status}`), { name: tag(xml, 'Code') ?? `HTTP${status}`, $metadata: { httpStatusCode: status } }))
        })
      })
      // Like the SDK's requestTimeout: the socket idle that long (connecting included).
      req.setTimeout(o.timeoutMs, () => req.destroy(Object.assign(new Error(`no answer within ${o.timeoutMs} ms`), { code: 'TimeoutError' })))
      req.on('error', failed)
      req.end(CALLER_IDENTITY)
    })
  }

  let ownAccount: Promise<string> | undefined

  return {
    ownAccountId () {
      ownAccount ??= timed('GetCallerIdentity', {}, () => client.send(new GetCallerIdentityCommand({})), r => r.$metadata.httpStatusCode).then(r => {
        if (r.Account === undefined || !/^\d{12}$/.test(r.Account)) throw new UpstreamError('sts', 'transient', 'GetCallerIdentity returned no account')
        return r.Account
      }, (err: AwsError) => {
        const status = err.$metadata?.httpStatusCode
        throw Object.assign(new UpstreamError('sts', OWN_CREDENTIALS.has(err.name) ? 'misconfigured' : 'transient', `GetCallerIdentity failed: ${err.name}`, status), { errorName: err.name })
      })
      // Only a success is kept: the next caller tries again.
      ownAccount.catch(() => { ownAccount = undefined })
      return ownAccount
    },
    async verifyRole ({ roleArn, awsAccountId, externalId, sessionName }) {
      let assumed
      const attributes = { 'cloud.account.id': awsAccountId, 'aws.sts.role_session_name': sessionName }
      try {
        assumed = await gated(() => timed('AssumeRole', attributes, () => client.send(new AssumeRoleCommand({
          RoleArn: roleArn,
          RoleSessionName: sessionName,
          ...(externalId !== '' ? { ExternalId: externalId } : {}),
          Policy: SESSION_POLICY
        })), r => r.$metadata.httpStatusCode))
      } catch (err) {
        return classify(err as AwsError, 'AssumeRole', o.gate)
      }
      const c = assumed.Credentials
      if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken) return { ok: false, code: 'CG3000', reason: 'AssumeRole returned no credentials', step: 'AssumeRole', awsCode: 'NoCredentials' }
      const key = { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken }
      try {
        const arn = await gated(() => timed('GetCallerIdentity', { 'cloud.account.id': awsAccountId }, () => callerIdentity(key), () => 200))
        if (!/^arn:aws(-us-gov|-cn)?:sts::\d{12}:assumed-role\//.test(arn)) {
          return { ok: false, code: 'CG3003', reason: 'the session is not an assumed role', step: 'GetCallerIdentity', awsCode: `Arn ${arn}` }
        }
        return { ok: true, assumedRoleArn: arn }
      } catch (err) {
        return classify(err as AwsError, 'GetCallerIdentity', o.gate)
      }
    },
    close () {
      client.destroy()
      httpAgent.destroy()
      httpsAgent.destroy()
    }
  }
}
