import { createHash, createHmac } from 'node:crypto'
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts'
import { SpanKind, type Span } from '@opentelemetry/api'
import { inSpan } from '../tracing/spans.js'
import { UpstreamError, type UpstreamErrorKind } from '../upstream/errors.js'
import type { CallOptions } from '../upstream/http.js'

export interface StsOptions {
  region: string
  endpoint?: string
  timeoutMs: number
  attempts: number
  /** Sockets to STS at once; at least the number of verifications that can run at once. */
  maxSockets: number
  observe?: CallOptions['observe']
}

export type RoleCheck =
  | { ok: true, assumedRoleArn: string }
  | { ok: false, code: 'CG3002' | 'CG3003' | 'CG3000', reason: string }

export interface RoleVerifier {
  /** `sessionName` is the RoleSessionName: the customer's CloudTrail shows it on the AssumeRole entry. */
  verifyRole: (r: { roleArn: string, awsAccountId: string, externalId: string, sessionName: string }) => Promise<RoleCheck>
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

/** Splits AWS failures into customer outcomes (returned) and retryable ones (thrown). */
function classify (err: AwsError, step: 'AssumeRole' | 'GetCallerIdentity'): RoleCheck {
  const status = err.$metadata?.httpStatusCode
  let kind: UpstreamErrorKind | undefined
  if (THROTTLING.has(err.name) || status === undefined || status >= 500 || err.name === 'TimeoutError') kind = 'transient'
  else if (step === 'AssumeRole' && OWN_CREDENTIALS.has(err.name)) kind = 'misconfigured'
  if (kind !== undefined) throw new UpstreamError('sts', kind, `${step} failed: ${err.name}`, status)
  if (err.name === 'AccessDenied' || err.name === 'AccessDeniedException') {
    return { ok: false, code: 'CG3002', reason: `${step}: access denied` }
  }
  return { ok: false, code: 'CG3000', reason: `${step}: ${err.name}` }
}

export interface SigningKey {
  accessKeyId: string
  secretAccessKey: string
  sessionToken?: string
}

/** RFC 3986 encoding, as SigV4 wants it. */
const escapeUri = (s: string): string => encodeURIComponent(s).replace(/[!'()*]/g, c => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
const sha256 = (data: string): string => createHash('sha256').update(data).digest('hex')
const hmac = (key: string | Buffer, data: string): Buffer => createHmac('sha256', key).update(data).digest()

/**
 * The Authorization header of AWS Signature Version 4 for a request with no query string, signing
 * every header given (lower-case names, `host` and `x-amz-date` among them) and the body.
 */
export function signatureV4 (r: { method: string, path: string, headers: Record<string, string>, body: string, region: string, service: string, key: SigningKey }): string {
  const amzDate = r.headers['x-amz-date']
  const day = amzDate.slice(0, 8)
  const scope = `${day}/${r.region}/${r.service}/aws4_request`
  const names = Object.keys(r.headers).sort()
  const canonical = [
    r.method,
    // The path as sent, URI-encoded once more (as for every service but S3), slashes kept.
    escapeUri(r.path).replace(/%2F/g, '/'),
    '',
    names.map(n => `${n}:${r.headers[n].trim().replace(/\s+/g, ' ')}\n`).join(''),
    names.join(';'),
    sha256(r.body)
  ].join('\n')
  const stringToSign = `AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${sha256(canonical)}`
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${r.key.secretAccessKey}`, day), r.region), r.service), 'aws4_request')
  const signature = createHmac('sha256', signingKey).update(stringToSign).digest('hex')
  return `AWS4-HMAC-SHA256 Credential=${r.key.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`
}

/** Where the SDK sends STS requests and the scope it signs them for. */
interface StsTarget {
  url: URL
  region: string
  service: string
}

/** The target of a request the SDK signed (the SDK's HttpRequest, as it is sent). */
function targetOf (request: unknown): StsTarget {
  const r = request as { protocol: string, hostname: string, port?: number, path: string, headers: Record<string, string> }
  const [, region, service] = /Credential=[^/]+\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/.exec(r.headers.authorization)!
  return { url: new URL(`${r.protocol}//${r.hostname}${r.port === undefined ? '' : `:${r.port}`}${r.path}`), region, service }
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
  // GetCallerIdentity goes where the SDK sends AssumeRole (its region, partition and endpoint
  // settings), signed for the same scope: the deserialize step sees the request as sent.
  let target: StsTarget | undefined
  client.middlewareStack.add(next => async args => {
    target ??= targetOf(args.request)
    return next(args)
  }, { step: 'deserialize', name: 'cloudoregStsTarget' })

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
  function callerIdentity (key: Required<SigningKey>): Promise<string> {
    // AssumeRole answered, so its request went through the middleware: the target is known.
    const { url, region, service } = target!
    const headers: Record<string, string> = {
      'content-type': 'application/x-www-form-urlencoded',
      host: url.host,
      // Corrected by the clock skew the SDK learnt from AWS's answers, as the SDK signs.
      'x-amz-date': new Date(Date.now() + client.config.systemClockOffset).toISOString().replace(/[-:]|\.\d{3}/g, ''),
      'x-amz-security-token': key.sessionToken
    }
    const authorization = signatureV4({ method: 'POST', path: url.pathname, headers, body: CALLER_IDENTITY, region, service, key })
    const { request, agent } = transport[url.protocol as keyof typeof transport]
    return new Promise((resolve, reject) => {
      // Network failures carry their code (ECONNRESET, TimeoutError...) as the name, as the SDK's do.
      const failed = (err: Error & { code?: string }): void => reject(Object.assign(err, { name: err.code ?? err.name }))
      const req = request(url, {
        method: 'POST',
        agent,
        headers: { ...headers, authorization, 'content-length': String(CALLER_IDENTITY.length) }
      }, (res: IncomingMessage) => {
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

  return {
    async verifyRole ({ roleArn, awsAccountId, externalId, sessionName }) {
      let assumed
      const attributes = { 'cloud.account.id': awsAccountId, 'aws.sts.role_session_name': sessionName }
      try {
        assumed = await timed('AssumeRole', attributes, () => client.send(new AssumeRoleCommand({
          RoleArn: roleArn,
          RoleSessionName: sessionName,
          ...(externalId !== '' ? { ExternalId: externalId } : {}),
          Policy: SESSION_POLICY
        })), r => r.$metadata.httpStatusCode)
      } catch (err) {
        return classify(err as AwsError, 'AssumeRole')
      }
      const c = assumed.Credentials
      if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken) return { ok: false, code: 'CG3000', reason: 'AssumeRole returned no credentials' }
      const key = { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken }
      try {
        const arn = await timed('GetCallerIdentity', { 'cloud.account.id': awsAccountId }, () => callerIdentity(key), () => 200)
        if (!/^arn:aws(-us-gov|-cn)?:sts::\d{12}:assumed-role\//.test(arn)) {
          return { ok: false, code: 'CG3003', reason: 'the session is not an assumed role' }
        }
        return { ok: true, assumedRoleArn: arn }
      } catch (err) {
        return classify(err as AwsError, 'GetCallerIdentity')
      }
    },
    close () {
      client.destroy()
      httpAgent.destroy()
      httpsAgent.destroy()
    }
  }
}
