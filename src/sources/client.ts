import type { Dispatcher } from 'undici'
import type { Tenant } from '../identity.js'
import { call, type CallOptions } from '../upstream/http.js'
import { UpstreamError } from '../upstream/errors.js'

export const CLOUD_METER_TYPE = '/insights/platform/cloud-meter'

/** Pages of one list read at most (10 million items at 100 a page). */
const MAX_PAGES = 100_000

export interface Application {
  id: string
  sourceId: string
  applicationTypeId: string
  /** sources-api's `paused_at` is set: the customer paused the application. */
  paused: boolean
  /** What was last reported for it (`available`, `unavailable`, or sources-api's own `in_progress`, ...). */
  availabilityStatus: string
}

/** A source in sources-api's cross-tenant list, with the tenant it belongs to. */
export interface TenantSource {
  sourceId: string
  orgId: string
  accountNumber: string | null
}

/** An authentication as the tenant's list shows it: no password, so an ARN kept there needs getAuthentication. */
export interface ListedAuthentication {
  id: string
  username: string
  resourceType: string
  resourceId: string
}

export interface Authentication {
  id: string
  authtype: string
  username: string
  password: string
  externalId: string
  resourceType: string
  resourceId: string
}

export interface SourcesClientOptions {
  baseUrl: string
  psk: string
  dispatcher: Dispatcher
  timeoutMs: number
  attempts: number
  observe?: CallOptions['observe']
}

export interface SourcesClient {
  cloudMeterTypeId: (tenant: Tenant) => Promise<string>
  getApplication: (id: string, tenant: Tenant) => Promise<Application>
  getAuthentication: (id: string, tenant: Tenant) => Promise<Authentication>
  /** `headers`: extra request headers (a traceparent when no instrumentation adds one). */
  reportAvailability: (applicationId: string, tenant: Tenant, status: string, error: string, headers?: Record<string, string>) => Promise<void>
  /** The application an authentication is linked to, if any. */
  applicationOfAuthentication: (authenticationId: string, tenant: Tenant) => Promise<string | null>
  /** The authentications linked to an application. */
  authenticationsOfApplication: (applicationId: string, tenant: Tenant) => Promise<string[]>
  sourceApplications: (sourceId: string, tenant: Tenant) => Promise<Application[]>
  // Lists for reconciliation, a page at a time, so that no caller needs to hold a whole list.
  /** Every source of every tenant (`/internal/v2.0/sources`, the PSK alone). */
  allSources: (pageSize: number) => AsyncGenerator<TenantSource[]>
  /** The tenant's cloud-meter applications. */
  cloudMeterApplications: (tenant: Tenant, pageSize: number) => AsyncGenerator<Application[]>
  /** The tenant's application-authentication links. */
  applicationAuthentications: (tenant: Tenant, pageSize: number) => AsyncGenerator<Array<{ applicationId: string, authenticationId: string }>>
  /** The tenant's `cloud-meter-arn` authentications. */
  arnAuthentications: (tenant: Tenant, pageSize: number) => AsyncGenerator<ListedAuthentication[]>
}

function toApplication (app: Record<string, unknown>): Application {
  return {
    id: str(app.id),
    sourceId: str(app.source_id),
    applicationTypeId: str(app.application_type_id),
    paused: str(app.paused_at) !== '',
    availabilityStatus: str(app.availability_status)
  }
}

function dataOf (body: unknown, what: string): Array<Record<string, unknown>> {
  const data = asObject(body, what).data
  if (!Array.isArray(data)) throw new UpstreamError('sources', 'transient', `${what}: unexpected response shape`)
  return data
}

function str (value: unknown): string {
  return value === null || value === undefined ? '' : String(value)
}

function asObject (body: unknown, what: string): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new UpstreamError('sources', 'transient', `${what}: unexpected response shape`)
  }
  return body as Record<string, unknown>
}

export function createSourcesClient (o: SourcesClientOptions): SourcesClient {
  const base = o.baseUrl.replace(/\/+$/, '')
  let cloudMeterTypeId: Promise<string> | undefined

  /** `tenant` null: a cross-tenant internal call, the PSK alone. */
  function send (path: string, tenant: Tenant | null, method: CallOptions['method'] = 'GET', body?: unknown, extra?: Record<string, string>): ReturnType<typeof call> {
    const headers: Record<string, string> = { ...extra, 'x-rh-sources-psk': o.psk }
    if (tenant !== null) headers['x-rh-sources-org-id'] = tenant.orgId
    if (tenant?.accountNumber) headers['x-rh-sources-account-number'] = tenant.accountNumber
    return call({ target: 'sources', dispatcher: o.dispatcher, method, url: base + path, headers, body, timeoutMs: o.timeoutMs, attempts: o.attempts, observe: o.observe })
  }

  /**
   * A sources-api list, page by page, until `meta.count` items were offered or a page came back short;
   * at most MAX_PAGES pages, so that an answer that ignores `offset` cannot keep a caller paging for ever.
   */
  async function * pages<T> (path: string, tenant: Tenant | null, pageSize: number, what: string, map: (item: Record<string, unknown>) => T): AsyncGenerator<T[]> {
    const sep = path.includes('?') ? '&' : '?'
    for (let page = 0, offset = 0; ; page++, offset += pageSize) {
      if (page >= MAX_PAGES) throw new UpstreamError('sources', 'transient', `${what}: more than ${MAX_PAGES} pages`)
      const { body } = await send(`${path}${sep}limit=${pageSize}&offset=${offset}`, tenant)
      const data = dataOf(body, what)
      const count = Number((asObject(body, what).meta as { count?: unknown } | undefined)?.count)
      yield data.map(map)
      if (data.length < pageSize || !(offset + pageSize < count)) return
    }
  }

  async function lookUpCloudMeterType (tenant: Tenant): Promise<string> {
    const res = await send(`/api/sources/v3.1/application_types?filter[name]=${CLOUD_METER_TYPE}`, tenant)
    const match = dataOf(res.body, 'application_types').find(t => t?.name === CLOUD_METER_TYPE)
    if (match === undefined) throw new UpstreamError('sources', 'transient', `application type ${CLOUD_METER_TYPE} not found`)
    return str(match.id)
  }

  return {
    async cloudMeterTypeId (tenant) {
      // Application type ids are global and never change, so one lookup serves every tenant; the first
      // sources of a burst share the lookup in flight. A failed lookup is forgotten, so the next asks again.
      cloudMeterTypeId ??= lookUpCloudMeterType(tenant).catch((err: unknown) => {
        cloudMeterTypeId = undefined
        throw err
      })
      return await cloudMeterTypeId
    },

    async getApplication (id, tenant) {
      return toApplication(asObject((await send(`/api/sources/v3.1/applications/${encodeURIComponent(id)}`, tenant)).body, 'application'))
    },

    async getAuthentication (id, tenant) {
      const auth = asObject((await send(`/internal/v2.0/authentications/${encodeURIComponent(id)}?expose_encrypted_attribute[]=password`, tenant)).body, 'authentication')
      const extra = auth.extra !== null && typeof auth.extra === 'object' ? auth.extra as Record<string, unknown> : {}
      return {
        id: str(auth.id),
        authtype: str(auth.authtype),
        username: str(auth.username),
        password: str(auth.password),
        externalId: str(extra.external_id).trim(),
        resourceType: str(auth.resource_type),
        resourceId: str(auth.resource_id)
      }
    },

    async applicationOfAuthentication (authenticationId, tenant) {
      const res = await send(`/api/sources/v3.1/application_authentications?filter[authentication_id]=${encodeURIComponent(authenticationId)}`, tenant)
      const link = dataOf(res.body, 'application_authentications')[0]
      return link === undefined ? null : str(link.application_id)
    },

    async authenticationsOfApplication (applicationId, tenant) {
      const res = await send(`/api/sources/v3.1/application_authentications?filter[application_id]=${encodeURIComponent(applicationId)}`, tenant)
      return dataOf(res.body, 'application_authentications').map(link => str(link.authentication_id))
    },

    async sourceApplications (sourceId, tenant) {
      const res = await send(`/api/sources/v3.1/sources/${encodeURIComponent(sourceId)}/applications`, tenant)
      return dataOf(res.body, 'applications').map(toApplication)
    },

    allSources (pageSize) {
      return pages('/internal/v2.0/sources', null, pageSize, 'sources', s => ({
        sourceId: str(s.id),
        orgId: str(s.org_id),
        accountNumber: str(s.tenant) === '' ? null : str(s.tenant)
      }))
    },

    async * cloudMeterApplications (tenant, pageSize) {
      const typeId = await this.cloudMeterTypeId(tenant)
      yield * pages(`/api/sources/v3.1/applications?filter[application_type_id]=${encodeURIComponent(typeId)}`, tenant, pageSize, 'applications', toApplication)
    },

    applicationAuthentications (tenant, pageSize) {
      return pages('/api/sources/v3.1/application_authentications', tenant, pageSize, 'application_authentications',
        l => ({ applicationId: str(l.application_id), authenticationId: str(l.authentication_id) }))
    },

    arnAuthentications (tenant, pageSize) {
      return pages('/api/sources/v3.1/authentications?filter[authtype]=cloud-meter-arn', tenant, pageSize, 'authentications',
        a => ({ id: str(a.id), username: str(a.username), resourceType: str(a.resource_type), resourceId: str(a.resource_id) }))
    },

    async reportAvailability (applicationId, tenant, status, error, headers) {
      // Never send last_checked_at: sources-api sets it, and sending it loops Application.update events.
      await send(`/api/sources/v3.1/applications/${encodeURIComponent(applicationId)}`, tenant, 'PATCH',
        { availability_status: status, availability_status_error: error }, headers)
    }
  }
}
