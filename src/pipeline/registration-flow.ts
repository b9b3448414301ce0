import { roleSessionName, type RoleVerifier } from '../aws/sts.js'
import type { Tenant } from '../identity.js'
import { isAccountTakenError, type RhsmClient } from '../rhsm/client.js'
import type { SourcesClient } from '../sources/client.js'
import { errorText, type ErrorCode } from './error-codes.js'
import type { Outcome } from '../store/outcomes.js'
import type { CheckStep, Registration, Registrations, RegistrationWrite } from '../store/registrations.js'
import { UpstreamError } from '../upstream/errors.js'
import { knowSource } from '../tracing/correlation.js'
import type { EventContext } from './runner.js'

export const ROLE_ARN = /^arn:aws(-us-gov|-cn)?:iam::(\d{12}):role\/[\w+=,.@/-]{1,512}$/

export interface FlowDeps {
  sources: SourcesClient
  sts: RoleVerifier
  rhsm: RhsmClient
  registrations: Registrations
}

export function idOf (value: unknown): string {
  return value === null || value === undefined ? '' : String(value)
}

export function isNotFound (err: unknown): boolean {
  return err instanceof UpstreamError && err.kind === 'not_found'
}

/** A registration as it stands, ready to be written back with changes. */
export function asWrite (r: Registration, attempt: number): RegistrationWrite {
  const { createdAt, updatedAt, verifiedAt, checkedAt, ...rest } = r
  return { ...rest, attempts: attempt, verified: false }
}

/** A registration's fields before this event's verdict, carrying forward what an earlier one established. */
function baseRegistration (ctx: EventContext, applicationId: string, sourceId: string, authenticationId: string, existing: Registration | null): RegistrationWrite {
  return {
    applicationId,
    sourceId,
    authenticationId,
    orgId: ctx.tenant.orgId,
    accountNumber: ctx.tenant.accountNumber,
    awsAccountId: existing?.awsAccountId ?? null,
    roleArn: existing?.roleArn ?? null,
    state: 'pending',
    mapped: existing?.mapped ?? false,
    lastErrorCode: null,
    lastErrorMessage: null,
    attempts: ctx.attempt,
    failedStep: null,
    upstreamCode: null,
    externalId: existing?.externalId ?? null,
    verified: false
  }
}

/** Where a check stopped and what the upstream said there, for the diagnosis. */
export interface Failure {
  step: CheckStep
  /** As received (an AWS error code, an HTTP status and reason), or null when the rule is cloudoreg's own. */
  upstreamCode: string | null
}

export function unavailable (base: RegistrationWrite, code: ErrorCode, failure: Failure, extra?: string): Outcome {
  const message = errorText(code, extra)
  return {
    note: code,
    registration: {
      ...base,
      state: 'unavailable',
      lastErrorCode: code,
      lastErrorMessage: message,
      failedStep: failure.step,
      upstreamCode: failure.upstreamCode,
      checked: true
    },
    status: { applicationId: base.applicationId, status: 'unavailable', error: message }
  }
}

export function tenantOf (r: Registration): Tenant {
  return { orgId: r.orgId, accountNumber: r.accountNumber }
}

export const REFUSED = 'refused: the application belongs to another org; nothing changed'

/**
 * An event acts only on a registration of its own org: another org's is a no-op, logged, and
 * written into the registration org's history (null when the event may go on).
 */
export function refusedIfForeign (r: Registration, ctx: EventContext): Outcome | null {
  if (r.orgId === ctx.tenant.orgId) return null
  ctx.log.warn({ applicationId: r.applicationId, registrationOrg: r.orgId, eventOrg: ctx.tenant.orgId }, 'event refused: its org does not own the application')
  return {
    note: REFUSED,
    audit: { orgId: r.orgId, applicationId: r.applicationId, sourceId: r.sourceId, action: 'refused', detail: `${ctx.event.eventType} from another org refused; nothing changed` }
  }
}

/** What sources-api, asked as `tenant`, says of an application: destruction is acted on only once confirmed. */
export async function applicationState (deps: FlowDeps, applicationId: string, tenant: Tenant): Promise<'gone' | 'paused' | 'active'> {
  try {
    return (await deps.sources.getApplication(applicationId, tenant)).paused ? 'paused' : 'active'
  } catch (err) {
    if (isNotFound(err)) return 'gone'
    throw err
  }
}

/** Whether sources-api, asked as the registration's tenant, no longer links its authentication to its application. */
export async function linkGone (deps: FlowDeps, r: Registration): Promise<boolean> {
  if (r.authenticationId === null) return true
  try {
    return !(await deps.sources.authenticationsOfApplication(r.applicationId, tenantOf(r))).includes(r.authenticationId)
  } catch (err) {
    if (isNotFound(err)) return true
    throw err
  }
}

/** Removes the RHSM mapping a registration holds; `removed` afterwards. */
export async function removeMapping (deps: FlowDeps, r: Registration, ctx: EventContext): Promise<Outcome> {
  knowSource(ctx, r.sourceId)
  if (r.mapped) await deps.rhsm.removeSourceAccounts({ orgId: r.orgId, sourceId: r.sourceId })
  return {
    note: r.mapped ? 'mapping removed' : 'nothing mapped',
    registration: { ...asWrite(r, ctx.attempt), state: 'removed', mapped: false }
  }
}

export interface Link {
  applicationId: string
  authenticationId: string
  /**
   * While paused: `store` keeps a new ARN for the unpause to verify (creates,
   * ARN edits); `verify` is the unpause itself.
   */
  whilePaused: 'store' | 'verify'
  /** Map the AWS account in RHSM even where cloudoreg believes it mapped (reconciliation found RHSM without it). */
  remap?: boolean
}

/**
 * The create flow: read the truth from sources-api, apply the duplicate rules,
 * verify the role with STS, (re)map the AWS account in RHSM, report. Also what
 * ARN edits, unpauses and re-checks run.
 */
export async function verifyAndRegister (deps: FlowDeps, ctx: EventContext, link: Link): Promise<Outcome> {
  const { tenant } = ctx
  const { applicationId, authenticationId } = link
  // The tombstone and the registration in one query, before any upstream call.
  const { destroyed, registration: existing } = await deps.registrations.findApplication(applicationId, tenant.orgId)
  const refused = existing === null ? null : refusedIfForeign(existing, ctx)
  if (refused !== null) return refused
  if (destroyed) return { note: 'application was destroyed; not mapped again' }

  ctx.memo.step = 'read application' satisfies CheckStep
  const cloudMeterTypeId = await deps.sources.cloudMeterTypeId(tenant)
  let application
  try {
    application = await deps.sources.getApplication(applicationId, tenant)
  } catch (err) {
    if (isNotFound(err)) return { note: 'application no longer exists' }
    throw err
  }
  if (application.applicationTypeId !== cloudMeterTypeId) return { note: 'not a cloud-meter application' }
  // An unpause that sources-api does not confirm (a later pause, or a forged unpause) changes nothing.
  if (existing?.state === 'paused' && link.whilePaused === 'verify' && application.paused) return { note: 'still paused in sources-api' }

  knowSource(ctx, application.sourceId)
  const base = baseRegistration(ctx, applicationId, application.sourceId, authenticationId, existing)
  ctx.memo.base = base

  ctx.memo.step = 'read authentication' satisfies CheckStep
  const reading = { step: 'read authentication', upstreamCode: null } as const
  let auth
  try {
    auth = await deps.sources.getAuthentication(authenticationId, tenant)
  } catch (err) {
    if (isNotFound(err)) return unavailable(base, 'CG2000', { ...reading, upstreamCode: 'HTTP 404' })
    throw err
  }
  base.externalId = auth.externalId === '' ? null : auth.externalId
  if (auth.authtype !== 'cloud-meter-arn') return unavailable(base, 'CG2001', { ...reading, upstreamCode: `authtype ${auth.authtype}` })
  if (auth.resourceType !== 'Application') return unavailable(base, 'CG2002', { ...reading, upstreamCode: `resource_type ${auth.resourceType}` })
  const roleArn = auth.username !== '' ? auth.username : auth.password
  if (roleArn === '') return unavailable(base, 'CG2004', reading)
  const arn = ROLE_ARN.exec(roleArn)
  if (arn === null) return unavailable(base, 'CG1004', reading)
  const awsAccountId = arn[2]

  if (existing?.state === 'paused' && link.whilePaused === 'store') {
    // Keep the mapping and the new ARN; the unpause verifies it.
    return { note: 'paused: ARN stored for the unpause', registration: { ...asWrite(existing, ctx.attempt), authenticationId, roleArn, awsAccountId } }
  }
  const verifying = { ...base, awsAccountId, roleArn }
  const conflict = await deps.registrations.findConflict({ applicationId, orgId: tenant.orgId, awsAccountId, roleArn })
  if (conflict !== null) return unavailable(verifying, conflict, { step: 'duplicates', upstreamCode: null })

  ctx.memo.step = 'AssumeRole' satisfies CheckStep
  const sessionName = roleSessionName(application.sourceId, ctx.event.id)
  // Kept with the event's outcome (its history shows it): the customer's CloudTrail names this session.
  ctx.memo.roleSessionName = sessionName
  const check = await deps.sts.verifyRole({ roleArn, awsAccountId, externalId: auth.externalId, sessionName })
  if (!check.ok) return unavailable(verifying, check.code, { step: check.step, upstreamCode: check.awsCode })

  const holds = existing?.mapped === true && link.remap !== true
  const sameMapping = holds && existing.awsAccountId === awsAccountId && existing.sourceId === application.sourceId
  if (!sameMapping) {
    ctx.memo.step = 'RHSM' satisfies CheckStep
    try {
      // The AWS account changed: the old mapping goes before the new one comes.
      if (holds) await deps.rhsm.removeSourceAccounts({ orgId: existing.orgId, sourceId: existing.sourceId })
      await deps.rhsm.addAwsAccount({ orgId: tenant.orgId, awsAccountId, sourceId: application.sourceId })
    } catch (err) {
      const unmapped = { ...verifying, mapped: false }
      const rhsm = { step: 'RHSM', upstreamCode: err instanceof UpstreamError ? `HTTP ${err.status ?? '?'}${err.reason ? `: ${err.reason}` : ''}` : null } as const
      if (isAccountTakenError(err)) return unavailable(unmapped, 'CR4001', rhsm)
      if (err instanceof UpstreamError && err.kind === 'rejected') {
        return unavailable(unmapped, 'CR4000', rhsm, err.reason ? `RHSM said: ${err.reason}` : undefined)
      }
      throw err
    }
  }
  return {
    note: sameMapping ? 'verified; mapping already held' : 'registered',
    registration: { ...verifying, state: 'registered', mapped: true, verified: true, checked: true },
    status: { applicationId, status: 'available', error: '' }
  }
}

/** When attempts run out: CR5000, but only for an application known to be cloud-meter; the step that kept failing, and its last error. */
export async function gaveUp (deps: FlowDeps, ctx: EventContext, applicationId: string, lastError: string): Promise<Outcome> {
  let base = ctx.memo.base as RegistrationWrite | undefined
  if (base === undefined) {
    const existing = applicationId === '' ? null : await deps.registrations.findByApplication(applicationId)
    if (existing === null) return { note: 'gave up before learning the application' }
    const refused = refusedIfForeign(existing, ctx)
    if (refused !== null) return refused
    base = asWrite(existing, ctx.attempt)
  }
  const step = (ctx.memo.step as CheckStep | undefined) ?? 'read application'
  return unavailable({ ...base, attempts: ctx.attempt }, 'CR5000', { step, upstreamCode: lastError.slice(0, 200) })
}
