import type { RoleVerifier } from '../../aws/sts.js'
import { isAccountTakenError, type RhsmClient } from '../../rhsm/client.js'
import type { SourcesClient } from '../../sources/client.js'
import { errorText, type ErrorCode } from '../../status/error-codes.js'
import type { Outcome } from '../../store/outcomes.js'
import type { Registration, Registrations, RegistrationWrite } from '../../store/registrations.js'
import { UpstreamError } from '../../upstream/errors.js'
import type { EventContext, EventHandler } from '../dispatcher.js'

export const ROLE_ARN = /^arn:aws(-us-gov|-cn)?:iam::(\d{12}):role\/[\w+=,.@/-]{1,512}$/

export interface CreateDeps {
  sources: SourcesClient
  sts: RoleVerifier
  rhsm: RhsmClient
  registrations: Registrations
}

function idOf (value: unknown): string {
  return value === null || value === undefined ? '' : String(value)
}

function isNotFound (err: unknown): boolean {
  return err instanceof UpstreamError && err.kind === 'not_found'
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
    verified: false
  }
}

function unavailable (base: RegistrationWrite, code: ErrorCode, extra?: string): Outcome {
  const message = errorText(code, extra)
  return {
    note: code,
    registration: { ...base, state: 'unavailable', lastErrorCode: code, lastErrorMessage: message },
    status: { applicationId: base.applicationId, status: 'unavailable', error: message }
  }
}

/**
 * ApplicationAuthentication.create: read the truth from sources-api, verify the
 * role with STS, map the AWS account in RHSM, report availability.
 */
export function appAuthCreate (deps: CreateDeps): EventHandler {
  return {
    async handle (ctx) {
      const { tenant, event } = ctx
      const applicationId = idOf(event.body.application_id)
      const authenticationId = idOf(event.body.authentication_id)
      if (applicationId === '' || authenticationId === '') return { note: 'event names no application or authentication' }

      const cloudMeterTypeId = await deps.sources.cloudMeterTypeId(tenant)
      let application
      try {
        application = await deps.sources.getApplication(applicationId, tenant)
      } catch (err) {
        if (isNotFound(err)) return { note: 'application no longer exists' }
        throw err
      }
      if (application.applicationTypeId !== cloudMeterTypeId) return { note: 'not a cloud-meter application' }

      const existing = await deps.registrations.findByApplication(applicationId)
      const base = baseRegistration(ctx, applicationId, application.sourceId, authenticationId, existing)
      ctx.memo.base = base

      let auth
      try {
        auth = await deps.sources.getAuthentication(authenticationId, tenant)
      } catch (err) {
        if (isNotFound(err)) return unavailable(base, 'CG2000')
        throw err
      }
      if (auth.authtype !== 'cloud-meter-arn') return unavailable(base, 'CG2001')
      if (auth.resourceType !== 'Application') return unavailable(base, 'CG2002')
      const roleArn = auth.username !== '' ? auth.username : auth.password
      if (roleArn === '') return unavailable(base, 'CG2004')
      const arn = ROLE_ARN.exec(roleArn)
      if (arn === null) return unavailable(base, 'CG1004')
      const awsAccountId = arn[2]
      const verifying = { ...base, awsAccountId, roleArn }

      const check = await deps.sts.verifyRole({ roleArn, awsAccountId, externalId: auth.externalId })
      if (!check.ok) return unavailable(verifying, check.code)

      try {
        await deps.rhsm.addAwsAccount({ orgId: tenant.orgId, awsAccountId, sourceId: application.sourceId })
      } catch (err) {
        if (isAccountTakenError(err)) return unavailable(verifying, 'CR4001')
        if (err instanceof UpstreamError && err.kind === 'rejected') {
          return unavailable(verifying, 'CR4000', err.reason ? `RHSM said: ${err.reason}` : undefined)
        }
        throw err
      }
      return {
        note: 'registered',
        registration: { ...verifying, state: 'registered', mapped: true, verified: true },
        status: { applicationId, status: 'available', error: '' }
      }
    },

    async exhausted (ctx) {
      // Report only for an application known to be cloud-meter: others get no status at all.
      let base = ctx.memo.base as RegistrationWrite | undefined
      if (base === undefined) {
        const applicationId = idOf(ctx.event.body.application_id)
        const existing = applicationId === '' ? null : await deps.registrations.findByApplication(applicationId)
        if (existing === null) return { note: 'gave up before learning the application' }
        base = baseRegistration(ctx, applicationId, existing.sourceId, idOf(ctx.event.body.authentication_id), existing)
      }
      return unavailable({ ...base, attempts: ctx.attempt }, 'CR5000')
    }
  }
}
