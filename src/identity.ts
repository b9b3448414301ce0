export interface Tenant {
  orgId: string
  accountNumber: string | null
}

// Org ids and EBS account numbers are decimal numbers in every Red Hat system; anything else in
// their place (a CR/LF, a NUL, SQL) is an attack or a bug, and would travel on into headers of
// upstream calls and into the store.
const TENANT_NUMBER = /^[0-9]{1,32}$/

export function isOrgId (value: unknown): value is string {
  return typeof value === 'string' && TENANT_NUMBER.test(value)
}

export function isAccountNumber (value: unknown): value is string {
  return typeof value === 'string' && TENANT_NUMBER.test(value)
}

/**
 * An optional account number: absent or empty (Go's zero value, as sources-api sends it) is null;
 * anything else that is not an account number is null too, with `refused` set so the caller can log it.
 */
export function optionalAccountNumber (value: unknown): { accountNumber: string | null, refused: boolean } {
  if (value === undefined || value === null || value === '') return { accountNumber: null, refused: false }
  return isAccountNumber(value) ? { accountNumber: value, refused: false } : { accountNumber: null, refused: true }
}

/** Identity types that belong to one org and may read its status (README: status API). */
export const ACCEPTED_IDENTITY_TYPES = ['User', 'System', 'ServiceAccount'] as const

export type DecodedIdentity =
  | { ok: true, orgId: string, accountNumber: string | null, accountNumberRefused: boolean, type: string | null }
  | { ok: false, reason: string }

/** Absent or empty (Go's zero value) means not given; anything else must be an org id. */
function givenOrgId (value: unknown): string | undefined | false {
  if (value === undefined || value === '') return undefined
  return isOrgId(value) ? value : false
}

/**
 * Reads `x-rh-identity` (base64 of JSON). The org id is `identity.org_id`, else
 * `identity.internal.org_id`; when both are given they must agree, and a given one must be an
 * org id. Many tenants have no account number.
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
  const { org_id: rawOrgId, internal, account_number: rawAccount, type } = identity as Record<string, unknown>
  const orgId = givenOrgId(rawOrgId)
  const internalOrgId = givenOrgId(internal !== null && typeof internal === 'object' ? (internal as Record<string, unknown>).org_id : undefined)
  if (orgId === false) return { ok: false, reason: 'x-rh-identity has an org_id that is not an org id (digits)' }
  if (internalOrgId === false) return { ok: false, reason: 'x-rh-identity has an internal.org_id that is not an org id (digits)' }
  if (orgId !== undefined && internalOrgId !== undefined && orgId !== internalOrgId) {
    return { ok: false, reason: 'x-rh-identity has an org_id that disagrees with its internal.org_id' }
  }
  const org = orgId ?? internalOrgId
  if (org === undefined) return { ok: false, reason: 'x-rh-identity has no org_id' }
  const account = optionalAccountNumber(rawAccount)
  return { ok: true, orgId: org, accountNumber: account.accountNumber, accountNumberRefused: account.refused, type: typeof type === 'string' ? type : null }
}

/** The identity of a caller of the status API or the availability check: decoded, and of a type that belongs to one org. */
export function callerIdentity (header: string | undefined): DecodedIdentity {
  const identity = decodeIdentity(header)
  if (!identity.ok) return identity
  if (!(ACCEPTED_IDENTITY_TYPES as readonly string[]).includes(identity.type ?? '')) {
    return { ok: false, reason: `x-rh-identity type must be one of ${ACCEPTED_IDENTITY_TYPES.join(', ')}` }
  }
  return identity
}
