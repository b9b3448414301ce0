import { FakeHttpServer } from './fake-http.js'
import type { FakeHttpOptions, FakeReply, RecordedRequest } from './fake-http.js'
import { readFixture } from './fixtures.js'

export interface RhsmMapping {
  awsAccountId: string;
  orgId: string;
}

export class FakeRhsm extends FakeHttpServer {
  readonly mappings = new Map<string, RhsmMapping>()
  /** POSTs that reached RHSM's logic (faulted ones are only in `requests`). */
  readonly postsBySource = new Map<string, number>()

  constructor (opts: FakeHttpOptions = {}) {
    super(opts, '/v1')
  }

  /** AWS account id → the detail of a 400 RHSM answers when asked to map it. */
  readonly rejectAccount = new Map<string, string>()

  protected route (req: RecordedRequest): FakeReply {
    const orgId = req.headers['x-rhsmapi-accountid']
    if (req.method === 'POST' && req.path === '/v1/cloud_access_providers/AWS/accounts') {
      if (!orgId) return badRequest('Missing X-RhsmApi-AccountID header')
      const items = parseAccounts(req.body)
      if (!items) return badRequest('Invalid request body')
      for (const item of items) this.postsBySource.set(item.sourceId, (this.postsBySource.get(item.sourceId) ?? 0) + 1)
      for (const item of items) {
        const rejection = this.rejectAccount.get(item.id)
        if (rejection !== undefined) return badRequest(rejection)
        for (const mapping of this.mappings.values()) {
          if (mapping.awsAccountId === item.id && mapping.orgId !== orgId) {
            const example = readFixture('rhsm/add-provider-account.json').error_example
            return { status: example.status, body: example.body }
          }
        }
      }
      for (const item of items) this.mappings.set(item.sourceId, { awsAccountId: item.id, orgId })
      return { status: 204 }
    }
    if (req.method === 'DELETE' && req.path === '/v1/cloud_access_providers/accounts') {
      if (!orgId) return badRequest('Missing X-RhsmApi-AccountID header')
      const sourceId = new URLSearchParams(req.query).get('sourceID')
      if (!sourceId) return badRequest('Missing sourceID')
      // Another org's mapping is invisible to this caller.
      const existing = this.mappings.get(sourceId)
      if (!existing || existing.orgId !== orgId) return { status: 404, body: error(404, 'Not Found', 'No cloud access found') }
      this.mappings.delete(sourceId)
      return { status: 204 }
    }
    if (req.method === 'GET' && req.path === '/v1/cloud_access_providers/enabled') {
      if (!orgId) return badRequest('Missing X-RhsmApi-AccountID header')
      const params = new URLSearchParams(req.query)
      const limit = Number(params.get('limit') ?? 100)
      const offset = Number(params.get('offset') ?? 0)
      const accounts = [...this.mappings].filter(([, m]) => m.orgId === orgId).slice(offset, offset + limit)
        .map(([sourceId, m]) => ({ id: m.awsAccountId, nickname: '', dateAdded: '2026-08-20T10:00:00Z', sourceId, verified: true }))
      // As RHSM's public API: `count` is the size of this page.
      return { status: 200, body: { pagination: { offset, limit, count: accounts.length }, body: [{ shortName: 'AWS', accounts }] } }
    }
    return { status: 404, body: error(404, 'Not Found', 'Not Found') }
  }
}

export async function startFakeRhsm (opts: FakeHttpOptions = {}): Promise<FakeRhsm> {
  return new FakeRhsm(opts).listen()
}

interface AccountItem {
  id: string;
  sourceId: string;
}

function parseAccounts (body: unknown): AccountItem[] | undefined {
  if (!Array.isArray(body) || body.length === 0) return undefined
  const ok = body.every(
    (x: unknown) =>
      typeof x === 'object' && x !== null && typeof (x as AccountItem).id === 'string' && typeof (x as AccountItem).sourceId === 'string'
  )
  return ok ? (body as AccountItem[]) : undefined
}

function error (status: number, title: string, detail: string): { errors: Array<Record<string, string>> } {
  return { errors: [{ status: String(status), title, detail }] }
}

function badRequest (detail: string): FakeReply {
  return { status: 400, body: error(400, 'Bad Request', detail) }
}
