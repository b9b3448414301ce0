import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { FakeHttpServer } from './fake-http.js'
import type { FakeHttpOptions, FakeReply, RecordedRequest } from './fake-http.js'
import { readFixtureText } from './fixtures.js'
import { recordSecrets } from './secrets.js'

export interface StsCall {
  action: string;
  params: Record<string, string>;
  accessKeyId: string | undefined;
  at: number;
}

export interface IssuedCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: Date;
  roleArn: string;
  sessionName: string;
}

const CALLER_ARN = 'arn:aws:iam::998877665544:user/cloudoreg'
const ROLE_ARN = /^arn:(aws(?:-us-gov|-cn)?):iam::(\d{12}):role\/(?:.*\/)?([\w+=,.@-]+)$/

const TEMPLATES = {
  assumeRole: readFixtureText('sts/assume-role.ok.xml'),
  callerIdentity: readFixtureText('sts/get-caller-identity.assumed-role.xml'),
  accessDenied: readFixtureText('sts/assume-role.access-denied.xml'),
  throttling: readFixtureText('sts/throttling.xml'),
}

export class FakeSts extends FakeHttpServer {
  readonly deny = new Set<string>()
  readonly notAssumed = new Set<string>()
  /** Role ARN → an AWS error code AssumeRole answers with (HTTP 400). */
  readonly errorFor = new Map<string, string>()
  readonly calls: StsCall[] = []
  readonly issued = new Map<string, IssuedCredentials>()

  private throttleRemaining = 0
  /** Share of calls answered with Throttling, drawn per call (unlike throttleNext, it never piles up). */
  throttleRate = 0
  private keySeq = 0
  /**
   * AssumeRole calls per second the account allows, like AWS's token bucket (refilled at this rate,
   * holding at most one second's worth); calls past it answer Throttling. Unset: no limit.
   */
  assumeRoleLimit: number | undefined
  /** AssumeRole calls answered Throttling by that limit. */
  limited = 0
  private bucket = { tokens: 0, at: 0 }

  constructor (opts: FakeHttpOptions = {}) {
    super(opts)
  }

  throttleNext (n: number): void {
    this.throttleRemaining += n
  }

  protected observe (req: RecordedRequest): void {
    const params = Object.fromEntries(new URLSearchParams(req.rawBody))
    this.calls.push({ action: params.Action ?? '', params, accessKeyId: accessKeyIdOf(req.headers.authorization), at: req.at })
  }

  protected faultReply (status: 503 | 401): FakeReply {
    return status === 503
      ? stsError(503, 'ServiceUnavailable', 'Service is unavailable', 'Receiver')
      : stsError(403, 'InvalidClientTokenId', 'The security token included in the request is invalid.')
  }

  protected route (req: RecordedRequest): FakeReply {
    if (req.method !== 'POST') return stsError(400, 'InvalidAction', 'Only POST is supported')
    const params = Object.fromEntries(new URLSearchParams(req.rawBody))
    if (this.throttleRemaining > 0 || Math.random() < this.throttleRate) {
      this.throttleRemaining = Math.max(0, this.throttleRemaining - 1)
      return xml(400, TEMPLATES.throttling)
    }
    if (params.Action === 'AssumeRole' && this.overLimit()) {
      this.limited++
      return xml(400, TEMPLATES.throttling)
    }
    if (params.Action === 'AssumeRole') return this.assumeRole(params)
    if (params.Action === 'GetCallerIdentity') return this.callerIdentity(accessKeyIdOf(req.headers.authorization))
    return stsError(400, 'InvalidAction', `Could not find operation ${params.Action ?? ''}`)
  }

  private overLimit (): boolean {
    const limit = this.assumeRoleLimit
    if (limit === undefined) return false
    const now = Date.now()
    const b = this.bucket
    b.tokens = b.at === 0 ? limit : Math.min(limit, b.tokens + (now - b.at) * limit / 1000)
    b.at = now
    if (b.tokens < 1) return true
    b.tokens--
    return false
  }

  private assumeRole (params: Record<string, string>): FakeReply {
    const roleArn = params.RoleArn ?? ''
    const sessionName = params.RoleSessionName ?? ''
    const m = roleArn.match(ROLE_ARN)
    if (!m || !/^[\w+=,.@-]{2,64}$/.test(sessionName)) {
      return stsError(400, 'ValidationError', `Invalid RoleArn or RoleSessionName: ${roleArn} ${sessionName}`)
    }
    const code = this.errorFor.get(roleArn)
    if (code !== undefined) return stsError(400, code, `injected ${code}`)
    if (this.deny.has(roleArn)) {
      return xml(403, setTag(TEMPLATES.accessDenied, 'Message', `User: ${CALLER_ARN} is not authorized to perform: sts:AssumeRole on resource: ${roleArn}`))
    }
    const [, partition, account, roleName] = m
    const creds: IssuedCredentials = {
      accessKeyId: `ASIA${String(++this.keySeq).padStart(6, '0')}${randomBytes(5).toString('hex').toUpperCase()}`,
      secretAccessKey: randomBytes(30).toString('base64'),
      sessionToken: randomBytes(48).toString('base64'),
      expiration: new Date(Math.floor(Date.now() / 1000) * 1000 + 3600_000),
      roleArn,
      sessionName,
    }
    this.issued.set(creds.accessKeyId, creds)
    recordSecrets([creds.secretAccessKey, creds.sessionToken])
    const values: Record<string, string> = {
      Arn: `arn:${partition}:sts::${account}:assumed-role/${roleName}/${sessionName}`,
      AssumedRoleId: `${roleId(roleArn)}:${sessionName}`,
      AccessKeyId: creds.accessKeyId,
      SecretAccessKey: creds.secretAccessKey,
      SessionToken: creds.sessionToken,
      Expiration: creds.expiration.toISOString().replace('.000Z', 'Z'),
      PackedPolicySize: String(params.Policy ? Math.min(100, Math.ceil(params.Policy.length / 20)) : 0),
      RequestId: randomUUID(),
    }
    return xml(200, Object.entries(values).reduce((doc, [tag, v]) => setTag(doc, tag, v), TEMPLATES.assumeRole))
  }

  private callerIdentity (accessKeyId: string | undefined): FakeReply {
    const creds = accessKeyId === undefined ? undefined : this.issued.get(accessKeyId)
    let arn = CALLER_ARN
    let userId = 'AIDAJQABLZS4A3QDU576Q'
    let account = '998877665544'
    if (creds) {
      const [, partition, acct, roleName] = creds.roleArn.match(ROLE_ARN) ?? []
      account = acct
      if (this.notAssumed.has(creds.roleArn)) {
        arn = `arn:${partition}:iam::${acct}:user/x`
        userId = 'AIDA' + roleId(creds.roleArn).slice(4)
      } else {
        arn = `arn:${partition}:sts::${acct}:assumed-role/${roleName}/${creds.sessionName}`
        userId = `${roleId(creds.roleArn)}:${creds.sessionName}`
      }
    }
    const values = { Arn: arn, UserId: userId, Account: account, RequestId: randomUUID() }
    return xml(200, Object.entries(values).reduce((doc, [tag, v]) => setTag(doc, tag, v), TEMPLATES.callerIdentity))
  }
}

export async function startFakeSts (opts: FakeHttpOptions = {}): Promise<FakeSts> {
  return new FakeSts(opts).listen()
}

function accessKeyIdOf (authorization: string | undefined): string | undefined {
  return authorization?.match(/Credential=([^/,\s]+)\//)?.[1]
}

function roleId (roleArn: string): string {
  return 'AROA' + createHash('sha1').update(roleArn).digest('hex').slice(0, 17).toUpperCase()
}

function escapeXml (s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

function setTag (doc: string, tag: string, value: string): string {
  return doc.replace(new RegExp(`<${tag}>[^<]*</${tag}>`), `<${tag}>${escapeXml(value)}</${tag}>`)
}

// The SDK takes $metadata.requestId from this header on success, not from the XML body.
function xml (status: number, body: string): FakeReply {
  const requestId = body.match(/<RequestId>([^<]*)<\/RequestId>/)?.[1] ?? randomUUID()
  return { status, body, contentType: 'text/xml', headers: { 'x-amzn-requestid': requestId } }
}

function stsError (status: number, code: string, message: string, type = 'Sender'): FakeReply {
  let doc = setTag(TEMPLATES.throttling, 'Code', code)
  doc = setTag(doc, 'Message', message)
  doc = setTag(doc, 'Type', type)
  return xml(status, setTag(doc, 'RequestId', randomUUID()))
}
