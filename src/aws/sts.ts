import { Agent as HttpAgent } from 'node:http'
import { Agent as HttpsAgent } from 'node:https'
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts'
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
  verifyRole: (r: { roleArn: string, awsAccountId: string, externalId: string }) => Promise<RoleCheck>
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

interface AwsError extends Error { $metadata?: { httpStatusCode?: number }, code?: string }

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

export function createRoleVerifier (o: StsOptions): RoleVerifier {
  // One pool of kept-alive sockets for every client, the per-session ones included: a new agent per
  // verification would open a new connection each time, and the SDK's default allows 50 sockets.
  const agent = { keepAlive: true, maxSockets: o.maxSockets }
  const httpAgent = new HttpAgent(agent)
  const httpsAgent = new HttpsAgent(agent)
  const requestHandler = { connectionTimeout: o.timeoutMs, requestTimeout: o.timeoutMs, throwOnRequestTimeout: true, httpAgent, httpsAgent }
  // The service's own credentials come from the SDK's default chain.
  const client = new STSClient({ region: o.region, endpoint: o.endpoint, maxAttempts: o.attempts, requestHandler })

  async function timed<T> (fn: () => Promise<T>): Promise<T> {
    const started = process.hrtime.bigint()
    try {
      const result = await fn()
      o.observe?.('sts', 'ok', Number(process.hrtime.bigint() - started) / 1e9)
      return result
    } catch (err) {
      o.observe?.('sts', 'error', Number(process.hrtime.bigint() - started) / 1e9)
      throw err
    }
  }

  return {
    async verifyRole ({ roleArn, awsAccountId, externalId }) {
      let assumed
      try {
        assumed = await timed(() => client.send(new AssumeRoleCommand({
          RoleArn: roleArn,
          RoleSessionName: `cloudoreg-${awsAccountId}`,
          ...(externalId !== '' ? { ExternalId: externalId } : {}),
          Policy: SESSION_POLICY
        })))
      } catch (err) {
        return classify(err as AwsError, 'AssumeRole')
      }
      const c = assumed.Credentials
      if (!c?.AccessKeyId || !c.SecretAccessKey) return { ok: false, code: 'CG3000', reason: 'AssumeRole returned no credentials' }
      // SDK v3 binds credentials to a client, so the assumed session needs its own, short-lived. It is
      // never destroyed: that would destroy the shared agents, and it holds nothing else.
      const session = new STSClient({
        region: o.region,
        endpoint: o.endpoint,
        maxAttempts: 1,
        requestHandler,
        credentials: { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken }
      })
      try {
        const identity = await timed(() => session.send(new GetCallerIdentityCommand({})))
        const arn = identity.Arn ?? ''
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
