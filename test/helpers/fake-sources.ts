import { FakeHttpServer } from './fake-http.js'
import type { FakeHttpOptions, FakeReply, RecordedRequest } from './fake-http.js'
import { readFixture } from './fixtures.js'

export interface SourcesApplicationType {
  id: string;
  name: string;
  [key: string]: unknown;
}

export interface SourcesApplication {
  id: string;
  created_at: string;
  updated_at: string;
  availability_status: string;
  last_checked_at: string;
  last_available_at: string;
  availability_status_error: string;
  extra: Record<string, unknown>;
  source_id: string;
  application_type_id: string;
  /** Set while the customer has paused the application (sources-api's v3.1 field). */
  paused_at: string | null;
}

export interface SourcesAuthentication {
  id: string;
  created_at: string;
  name: string;
  authtype: string;
  username: string;
  password: string;
  extra: { external_id?: string; [key: string]: unknown };
  version: string;
  availability_status: string;
  availability_status_error: string;
  resource_type: string;
  resource_id: string;
}

export interface SourcesApplicationAuthentication {
  id: string;
  created_at: string;
  updated_at: string;
  application_id: string;
  authentication_id: string;
}

export interface AddSourceInput {
  sourceId: string;
  applicationId: string;
  authenticationId: string;
  arn: string;
  externalId?: string;
  applicationTypeId?: string;
  authtype?: string;
  resourceType?: string;
  /** The tenant owning it: a request naming another org (`x-rh-sources-org-id`) gets 404, as from sources-api. Unset: any tenant sees it. */
  orgId?: string;
}

export interface FakeSourcesOptions extends FakeHttpOptions {
  psk?: string;
}

const API = '/api/sources/v3.1'

export class FakeSources extends FakeHttpServer {
  psk: string
  applicationTypes: SourcesApplicationType[] = structuredClone(
    readFixture('sources-api/application_types.cloud-meter.json').data
  )

  readonly sources = new Set<string>()
  readonly applications = new Map<string, SourcesApplication>()
  readonly authentications = new Map<string, SourcesAuthentication>()
  applicationAuthentications: SourcesApplicationAuthentication[] = []
  readonly patches: Array<{ applicationId: string; body: unknown }> = []
  /** Owner org of applications and authentications added with `orgId`. */
  readonly owners = new Map<string, string>()
  /** The org of each source added with `orgId`, for the cross-tenant list. */
  readonly sourceOrgs = new Map<string, string>()
  /** PATCHes of these applications are answered with this status (a permanently failing application). */
  readonly failPatches = new Map<string, number>()

  private nextAppAuthId = 1000

  constructor (opts: FakeSourcesOptions = {}) {
    super(opts)
    this.psk = opts.psk ?? 'test-psk'
  }

  /** Another authentication like `baseId` (same application, external id, ...) naming another role. */
  addRole (baseId: string, id: string, arn: string): void {
    this.authentications.set(id, { ...this.authentications.get(baseId)!, id, username: arn })
  }

  addSource (input: AddSourceInput): {
    application: SourcesApplication;
    authentication: SourcesAuthentication;
    applicationAuthentication: SourcesApplicationAuthentication;
  } {
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')
    const resourceType = input.resourceType ?? 'Application'
    this.sources.add(input.sourceId)
    const application: SourcesApplication = {
      id: input.applicationId,
      created_at: now,
      updated_at: now,
      availability_status: 'in_progress',
      last_checked_at: '',
      last_available_at: '',
      availability_status_error: '',
      extra: {},
      source_id: input.sourceId,
      application_type_id: input.applicationTypeId ?? '5',
      paused_at: null,
    }
    const authentication: SourcesAuthentication = {
      id: input.authenticationId,
      created_at: now,
      name: '',
      authtype: input.authtype ?? 'cloud-meter-arn',
      username: input.arn,
      password: '',
      extra: input.externalId === undefined ? {} : { external_id: input.externalId },
      version: '',
      availability_status: 'in_progress',
      availability_status_error: '',
      resource_type: resourceType,
      resource_id: resourceType === 'Source' ? input.sourceId : input.applicationId,
    }
    const applicationAuthentication: SourcesApplicationAuthentication = {
      id: String(this.nextAppAuthId++),
      created_at: now,
      updated_at: now,
      application_id: input.applicationId,
      authentication_id: input.authenticationId,
    }
    this.applications.set(application.id, application)
    this.authentications.set(authentication.id, authentication)
    this.applicationAuthentications.push(applicationAuthentication)
    if (input.orgId !== undefined) {
      this.sourceOrgs.set(input.sourceId, input.orgId)
      this.owners.set(`app:${application.id}`, input.orgId)
      this.owners.set(`auth:${authentication.id}`, input.orgId)
    }
    return { application, authentication, applicationAuthentication }
  }

  /** The customer paused (true) or resumed (false) the application. */
  setPaused (applicationId: string, paused: boolean): void {
    this.applications.get(applicationId)!.paused_at = paused ? new Date().toISOString() : null
  }

  /** The customer removed the application: it and its links are gone (sources-api then emits the destroy events). */
  removeApplication (applicationId: string): void {
    this.applications.delete(applicationId)
    this.removeLinks(applicationId)
  }

  /** The customer unlinked the application's authentications. */
  removeLinks (applicationId: string): void {
    this.applicationAuthentications = this.applicationAuthentications.filter((r) => r.application_id !== applicationId)
  }

  /** Whether the resource belongs to the requesting tenant: a tenant's lists show only its own. */
  private owned (req: RecordedRequest, key: string): boolean {
    return this.owners.get(key) === req.headers['x-rh-sources-org-id']
  }

  /** Whether the requesting tenant may see the resource (sources-api scopes every lookup to it). */
  private visible (req: RecordedRequest, key: string): boolean {
    const owner = this.owners.get(key)
    return owner === undefined || owner === req.headers['x-rh-sources-org-id']
  }

  protected route (req: RecordedRequest): FakeReply {
    if (req.headers['x-rh-sources-psk'] !== this.psk) return this.faultReply(401)
    const params = new URLSearchParams(req.query)
    const p = req.path
    let m: RegExpMatchArray | null

    if (req.method === 'GET' && p === `${API}/application_types`) {
      const name = params.get('filter[name]')
      return list(this.applicationTypes.filter((t) => name === null || t.name === name), params)
    }
    if (req.method === 'GET' && p === '/internal/v2.0/sources') {
      // Cross-tenant, the PSK alone: each source with its tenant.
      return list([...this.sources].map((id) => ({ id, org_id: this.sourceOrgs.get(id) ?? '', tenant: '' })), params)
    }
    if (req.method === 'GET' && p === `${API}/applications`) {
      const typeId = params.get('filter[application_type_id]')
      return list([...this.applications.values()].filter((a) => (typeId === null || a.application_type_id === typeId) && this.owned(req, `app:${a.id}`)), params)
    }
    if (req.method === 'GET' && p === `${API}/authentications`) {
      const authtype = params.get('filter[authtype]')
      // The public list never shows the password.
      return list([...this.authentications.values()].filter((a) => (authtype === null || a.authtype === authtype) && this.owned(req, `auth:${a.id}`))
        .map(({ password: _hidden, ...rest }) => rest), params)
    }
    if ((m = p.match(/^\/api\/sources\/v3\.1\/applications\/([^/]+)$/))) {
      const app = this.applications.get(m[1])
      if (!app || !this.visible(req, `app:${m[1]}`)) return notFound()
      if (req.method === 'GET') {
        // sources-api omits paused_at (omitempty) unless the application is paused.
        const { paused_at: pausedAt, ...rest } = app
        return { status: 200, body: pausedAt === null ? rest : app }
      }
      const failWith = this.failPatches.get(app.id)
      if (req.method === 'PATCH' && failWith !== undefined) {
        return { status: failWith, body: { errors: [{ status: String(failWith), detail: 'refused by the fake' }] } }
      }
      if (req.method === 'PATCH') {
        this.patches.push({ applicationId: app.id, body: req.body })
        if (isRecord(req.body)) {
          for (const [k, v] of Object.entries(req.body)) if (k in app && k !== 'id') (app as unknown as Record<string, unknown>)[k] = v
        }
        return { status: 204 }
      }
    }
    if (req.method === 'GET' && (m = p.match(/^\/internal\/v2\.0\/authentications\/([^/]+)$/))) {
      const auth = this.authentications.get(m[1])
      if (!auth || !this.visible(req, `auth:${m[1]}`)) return notFound()
      if (params.getAll('expose_encrypted_attribute[]').includes('password')) return { status: 200, body: auth }
      const { password: _hidden, ...rest } = auth
      return { status: 200, body: rest }
    }
    if (req.method === 'GET' && p === `${API}/application_authentications`) {
      const authId = params.get('filter[authentication_id]')
      const appId = params.get('filter[application_id]')
      // Unfiltered, it is the tenant's list: only its own links.
      const seen = authId === null && appId === null ? this.owned.bind(this) : this.visible.bind(this)
      return list(
        this.applicationAuthentications.filter(
          (r) =>
            (authId === null || r.authentication_id === authId) &&
            (appId === null || r.application_id === appId) &&
            seen(req, `app:${r.application_id}`)
        ),
        params
      )
    }
    if (req.method === 'GET' && (m = p.match(/^\/api\/sources\/v3\.1\/sources\/([^/]+)\/applications$/))) {
      const sourceId = m[1]
      const apps = [...this.applications.values()].filter((a) => a.source_id === sourceId && this.visible(req, `app:${a.id}`))
      if (!this.sources.has(sourceId) && apps.length === 0) return notFound()
      return list(apps, params)
    }
    return notFound()
  }
}

export async function startFakeSources (opts: FakeSourcesOptions = {}): Promise<FakeSources> {
  return new FakeSources(opts).listen()
}

/** A sources-api list page: `limit` (default 100) items from `offset`, `meta.count` all of them. */
function list (data: unknown[], params: URLSearchParams): FakeReply {
  const limit = Number(params.get('limit') ?? 100)
  const offset = Number(params.get('offset') ?? 0)
  return { status: 200, body: { meta: { count: data.length, limit, offset }, links: {}, data: data.slice(offset, offset + limit) } }
}

function notFound (): FakeReply {
  return { status: 404, body: readFixture('sources-api/error.404.json') }
}

function isRecord (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
