import { CHECK_EVENT } from '../../events/event.js'
import type { Outcome } from '../../store/outcomes.js'
import type { EventContext, EventHandler } from '../runner.js'
import { asWrite, gaveUp, idOf, isNotFound, removeMapping, verifyAndRegister, type FlowDeps } from '../registration-flow.js'

export type HandlerDeps = FlowDeps

/** A handler for the events of one application; `appOf` says which, from the event body. */
function forApplication (deps: FlowDeps, appOf: (body: Record<string, unknown>) => string, handle: EventHandler['handle']): EventHandler {
  return {
    handle: async ctx => withSessionName(ctx, await handle(ctx)),
    exhausted: async (ctx, _error) => withSessionName(ctx, await gaveUp(deps, ctx, appOf(ctx.event.body)))
  }
}

/** An event that assumed the customer's role keeps the session's name (their CloudTrail shows it) with its outcome. */
function withSessionName (ctx: EventContext, outcome: Outcome): Outcome {
  const name = ctx.memo.roleSessionName
  return typeof name === 'string' ? { ...outcome, roleSessionName: name } : outcome
}

/**
 * What cloudoreg does for each event type (DESIGN.md); every other type is
 * stored and marked ignored. Never report status in reaction to
 * Application.update or Records.update: sources-api emits them after every report.
 */
export function createHandlers (deps: HandlerDeps): Map<string, EventHandler> {
  const { registrations, rhsm, sources } = deps
  const applicationId = (body: Record<string, unknown>): string => idOf(body.application_id)
  const id = (body: Record<string, unknown>): string => idOf(body.id)

  return new Map<string, EventHandler>([
    ['ApplicationAuthentication.create', forApplication(deps, applicationId, async ctx => {
      const link = { applicationId: applicationId(ctx.event.body), authenticationId: idOf(ctx.event.body.authentication_id) }
      if (link.applicationId === '' || link.authenticationId === '') return { note: 'event names no application or authentication' }
      return verifyAndRegister(deps, ctx, { ...link, whilePaused: 'store' })
    })],

    ['ApplicationAuthentication.destroy', forApplication(deps, applicationId, async ctx => {
      const existing = await registrations.findByApplication(applicationId(ctx.event.body))
      return existing === null ? { note: 'no registration' } : removeMapping(deps, existing, ctx)
    })],

    ['Authentication.update', forApplication(deps, b => idOf(b.resource_id), async ctx => {
      const { body } = ctx.event
      if (body.resource_type !== 'Application') return { note: 'not an application\'s authentication' }
      const authenticationId = id(body)
      let app = idOf(body.resource_id)
      if (await registrations.findByApplication(app) === null) {
        // Never registered (the create failed or is still to come): find the link the create would name.
        app = await sources.applicationOfAuthentication(authenticationId, ctx.tenant) ?? ''
        if (app === '') return { note: 'authentication is linked to no application' }
      }
      return verifyAndRegister(deps, ctx, { applicationId: app, authenticationId, whilePaused: 'store' })
    })],

    ['Application.pause', forApplication(deps, id, async ctx => {
      const existing = await registrations.findByApplication(id(ctx.event.body))
      if (existing === null || existing.state === 'removed') return { note: 'no registration to pause' }
      return { note: 'paused', registration: { ...asWrite(existing, ctx.attempt), state: 'paused' } }
    })],

    ['Application.unpause', forApplication(deps, id, async ctx => {
      const existing = await registrations.findByApplication(id(ctx.event.body))
      if (existing === null || existing.state === 'removed' || existing.authenticationId === null) return { note: 'no registration to unpause' }
      return verifyAndRegister(deps, ctx, { applicationId: existing.applicationId, authenticationId: existing.authenticationId, whilePaused: 'verify' })
    })],

    ['Application.destroy', forApplication(deps, id, async ctx => {
      const { body } = ctx.event
      const app = id(body)
      const sourceId = idOf(body.source_id)
      const existing = await registrations.findByApplication(app)
      const tombstone = { applicationId: app, sourceId: existing?.sourceId ?? (sourceId || null), orgId: ctx.tenant.orgId }
      if (existing !== null) return { ...await removeMapping(deps, existing, ctx), tombstone }
      // Registered before cloudoreg existed: no local record, but RHSM may still hold a mapping.
      if (sourceId !== '' && idOf(body.application_type_id) === await sources.cloudMeterTypeId(ctx.tenant)) {
        await rhsm.removeSourceAccounts({ orgId: ctx.tenant.orgId, sourceId })
        return { note: 'mapping removed by source id (no local registration)', tombstone }
      }
      return { note: 'not a cloud-meter application' }
    })],

    ['Source.destroy', forApplication(deps, () => '', async ctx => {
      const existing = await registrations.findBySource(ctx.tenant.orgId, id(ctx.event.body))
      if (existing === null) return { note: 'no registration for the source' }
      const tombstone = { applicationId: existing.applicationId, sourceId: existing.sourceId, orgId: existing.orgId }
      return { ...await removeMapping(deps, existing, ctx), tombstone }
    })],

    [CHECK_EVENT, forApplication(deps, () => '', async ctx => {
      const sourceId = idOf(ctx.event.body.source_id)
      const existing = await registrations.findBySource(ctx.tenant.orgId, sourceId)
      if (existing !== null) {
        if (existing.state === 'paused' || existing.state === 'removed' || existing.authenticationId === null) return { note: `re-check skipped: ${existing.state}` }
        return verifyAndRegister(deps, ctx, { applicationId: existing.applicationId, authenticationId: existing.authenticationId, whilePaused: 'verify' })
      }
      // A source registered before cloudoreg existed: find its cloud-meter application and ARN authentication.
      const typeId = await sources.cloudMeterTypeId(ctx.tenant)
      let applications
      try {
        applications = await sources.sourceApplications(sourceId, ctx.tenant)
      } catch (err) {
        if (isNotFound(err)) return { note: 'source not found in sources-api' }
        throw err
      }
      const app = applications.find(a => a.applicationTypeId === typeId)
      if (app === undefined) return { note: 'source has no cloud-meter application' }
      const [authenticationId] = await sources.authenticationsOfApplication(app.id, ctx.tenant)
      if (authenticationId === undefined) return { note: 'cloud-meter application has no authentication' }
      return verifyAndRegister(deps, ctx, { applicationId: app.id, authenticationId, whilePaused: 'store' })
    })]
  ])
}
