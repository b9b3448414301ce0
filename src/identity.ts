export interface Tenant {
  orgId: string
  accountNumber: string | null
}

const ORG_ID = /^[A-Za-z0-9_-]{1,64}$/

export function isOrgId (value: unknown): value is string {
  return typeof value === 'string' && ORG_ID.test(value)
}

export type DecodedIdentity =
  | { ok: true, orgId: string, accountNumber: string | null }
  | { ok: false, reason: string }

/**
 * Reads `x-rh-identity` (base64 of JSON). The org id is `identity.org_id`, else
 * `identity.internal.org_id`; many tenants have no account number.
 */
export function decodeIdentity (header: string | undefined): DecodedIdentity {
  if (header === undefined || header === '') return { ok: false, reason: 'x-rh-identity header is missing' }
  if (header.length > 16384) return { ok: false, reason: 'x-rh-identity header is too long' }
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(header)) return { ok: false, reason: 'x-rh-identity is not base64' }
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(header, 'base64').toString('utf8'))
  } catch {
    return { ok: false, reason: 'x-rh-identity is not base64-encoded JSON' }
  }
  const identity = (parsed as { identity?: unknown } | null)?.identity
  if (identity === null || typeof identity !== 'object' || Array.isArray(identity)) {
    return { ok: false, reason: 'x-rh-identity has no identity object' }
  }
  const { org_id: orgId, internal, account_number: accountNumber } = identity as Record<string, unknown>
  const internalOrgId = internal !== null && typeof internal === 'object' ? (internal as Record<string, unknown>).org_id : undefined
  const org = isOrgId(orgId) ? orgId : isOrgId(internalOrgId) ? internalOrgId : undefined
  if (org === undefined) return { ok: false, reason: 'x-rh-identity has no valid org_id' }
  return { ok: true, orgId: org, accountNumber: typeof accountNumber === 'string' && accountNumber !== '' ? accountNumber : null }
}
