import { CHECK_EVENT, RECONCILE_EVENT } from '../../events/event.js'
import type { Outcome } from '../../store/outcomes.js'
import { knowSource } from '../../tracing/correlation.js'
import type { EventContext, EventHandler } from '../runner.js'
import { reconcileRepair } from './reconcile.js'
import { applicationState, asWrite, gaveUp, idOf, isNotFound, linkGone, refusedIfForeign, removeMapping, tenantOf, unavailable, verifyAndRegister, type FlowDeps } from '../registration-flow.js'

export interface HandlerDeps extends FlowDeps {
  /** A check of sources-api within this long of the registration's last decision reports it again, without STS. */
  checkReuseMs: number
}

/** A handler for the events of one application; `appOf` says which, from the event body. */
function forApplication (deps: FlowDeps, appOf: (body: Record<string, unknown>) => string, handle: EventHandler['handle']): EventHandler {
  return {
    handle: async ctx => withSessionName(ctx, await handle(ctx)),
    exhausted: async (ctx, error) => withSessionName(ctx, await gaveUp(deps, ctx, appOf(ctx.event.body), error))
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
 *
 * An event says what happened, not what is true: a handler changes a registration only when the
 * event's org is the registration's (refusedIfForeign), and destroys or pauses only what
 * sources-api, asked as the registration's tenant, confirms gone or paused.
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
      if (existing === null) return { note: 'no registration' }
      const refused = refusedIfForeign(existing, ctx)
      if (refused !== null) return refused
      if (!await linkGone(deps, existing)) return { note: 'link still exists in sources-api; nothing removed' }
      return removeMapping(deps, existing, ctx)
    })],

    ['Authentication.update', forApplication(deps, b => idOf(b.resource_id), async ctx => {
      const { body } = ctx.event
      if (body.resource_type !== 'Application') return { note: 'not an application\'s authentication' }
      const authenticationId = id(body)
      let app = idOf(body.resource_id)
      const existing = await registrations.findByApplication(app)
      if (existing !== null) {
        const refused = refusedIfForeign(existing, ctx)
        if (refused !== null) return refused
      } else {
        // Never registered (the create failed or is still to come): find the link the create would name.
        app = await sources.applicationOfAuthentication(authenticationId, ctx.tenant) ?? ''
        if (app === '') return { note: 'authentication is linked to no application' }
      }
      return verifyAndRegister(deps, ctx, { applicationId: app, authenticationId, whilePaused: 'store' })
    })],

    // sources-api emits only this when a customer deletes the credential itself; the application stays.
    ['Authentication.destroy', forApplication(deps, b => idOf(b.resource_id), async ctx => {
      const { body } = ctx.event
      if (body.resource_type !== 'Application') return { note: 'not an application\'s authentication' }
      const authenticationId = id(body)
      const existing = await registrations.findByApplication(idOf(body.resource_id))
      if (existing === null || existing.state === 'removed') return { note: 'no registration' }
      // Another org's registration is never touched by this org's event.
      if (existing.orgId !== ctx.tenant.orgId) {
        ctx.log.warn({ registrationOrg: existing.orgId }, 'Authentication.destroy of another org\'s registration ignored')
        return { note: 'registration belongs to another org; nothing done' }
      }
      if (existing.authenticationId !== authenticationId) return { note: 'not the authentication the registration uses' }
      knowSource(ctx, existing.sourceId)
      try {
        await sources.getAuthentication(authenticationId, ctx.tenant)
        return { note: 'authentication still exists in sources-api; nothing removed' }
      } catch (err) {
        if (!isNotFound(err)) throw err
      }
      const removed = await removeMapping(deps, existing, ctx)
      const reported = unavailable({ ...removed.registration!, authenticationId: null }, 'CG2000', { step: 'read authentication', upstreamCode: 'HTTP 404' })
      return { ...reported, note: `${removed.note}; authentication deleted, CG2000 reported` }
    })],

    ['Application.pause', forApplication(deps, id, async ctx => {
      const existing = await registrations.findByApplication(id(ctx.event.body))
      if (existing === null || existing.state === 'removed') return { note: 'no registration to pause' }
      const refused = refusedIfForeign(existing, ctx)
      if (refused !== null) return refused
      if (await applicationState(deps, existing.applicationId, tenantOf(existing)) !== 'paused') return { note: 'not paused in sources-api; nothing changed' }
      return { note: 'paused', registration: { ...asWrite(existing, ctx.attempt), state: 'paused' } }
    })],

    ['Application.unpause', forApplication(deps, id, async ctx => {
      const existing = await registrations.findByApplication(id(ctx.event.body))
      if (existing === null || existing.state === 'removed' || existing.authenticationId === null) return { note: 'no registration to unpause' }
      // verifyAndRegister refuses another org's event, and an unpause sources-api does not confirm.
      return verifyAndRegister(deps, ctx, { applicationId: existing.applicationId, authenticationId: existing.authenticationId, whilePaused: 'verify' })
    })],

    ['Application.destroy', forApplication(deps, id, async ctx => {
      const { body } = ctx.event
      const app = id(body)
      const sourceId = idOf(body.source_id)
      const existing = await registrations.findByApplication(app)
      const tombstone = { applicationId: app, sourceId: existing?.sourceId ?? (sourceId || null), orgId: ctx.tenant.orgId }
      if (existing !== null) {
        const refused = refusedIfForeign(existing, ctx)
        if (refused !== null) return refused
        if (await applicationState(deps, app, tenantOf(existing)) !== 'gone') return { note: 'application still exists in sources-api; nothing removed' }
        return { ...await removeMapping(deps, existing, ctx), tombstone }
      }
      // Registered before cloudoreg existed: no local record, but RHSM may still hold a mapping.
      // The tombstone is the event's org's own: it can never block another org's application.
      if (sourceId !== '' && idOf(body.application_type_id) === await sources.cloudMeterTypeId(ctx.tenant)) {
        if (await applicationState(deps, app, ctx.tenant) !== 'gone') return { note: 'application still exists in sources-api; nothing removed' }
        await rhsm.removeSourceAccounts({ orgId: ctx.tenant.orgId, sourceId })
        return { note: 'mapping removed by source id (no local registration)', tombstone }
      }
      return { note: 'not a cloud-meter application' }
    })],

    ['Source.destroy', forApplication(deps, () => '', async ctx => {
      const existing = await registrations.findBySource(ctx.tenant.orgId, id(ctx.event.body))
      if (existing === null) return { note: 'no registration for the source' }
      // The source's applications go with it: its cloud-meter application must be gone too.
      if (await applicationState(deps, existing.applicationId, tenantOf(existing)) !== 'gone') return { note: 'application still exists in sources-api; nothing removed' }
      const tombstone = { applicationId: existing.applicationId, sourceId: existing.sourceId, orgId: existing.orgId }
      return { ...await removeMapping(deps, existing, ctx), tombstone }
    })],

    [RECONCILE_EVENT, forApplication(deps, applicationId, reconcileRepair(deps))],

    [CHECK_EVENT, forApplication(deps, () => '', async ctx => {
      const sourceId = idOf(ctx.event.body.source_id)
      const existing = await registrations.findBySource(ctx.tenant.orgId, sourceId)
      if (existing !== null) {
        if (existing.state === 'paused' || existing.state === 'removed' || existing.authenticationId === null) return { note: `re-check skipped: ${existing.state}` }
        // Only sources-api's periodic checks reuse a fresh result: an operator's re-verify and a customer's
        // check (asked for after fixing the role) always verify.
        const fresh = Date.now() - existing.updatedAt.getTime() < deps.checkReuseMs
        if (fresh && ctx.event.body.requested_by === 'sources-api' && (existing.state === 'registered' || existing.state === 'unavailable')) {
          const status = existing.state === 'registered'
            ? { applicationId: existing.applicationId, status: 'available' as const, error: '' }
            : { applicationId: existing.applicationId, status: 'unavailable' as const, error: existing.lastErrorMessage ?? '' }
          return { note: 're-check soon after the last verification: its result reported again', status }
        }
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
