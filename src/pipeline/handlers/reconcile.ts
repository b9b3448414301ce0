import type { Application } from '../../sources/client.js'
import type { Outcome } from '../../store/outcomes.js'
import { knowSource } from '../../tracing/correlation.js'
import { applicationState, idOf, isNotFound, linkGone, refusedIfForeign, removeMapping, tenantOf, verifyAndRegister, type FlowDeps } from '../registration-flow.js'
import type { EventContext } from '../runner.js'

/**
 * The repairs a real reconciliation run queues (`cloudoreg.reconcile`, one per drift item, behind the
 * source's other events). The sweep saw the drift a while ago: each repair asks sources-api again
 * and acts only on what it confirms, like the destroy handlers.
 */
export function reconcileRepair (deps: FlowDeps): (ctx: EventContext) => Promise<Outcome> {
  return async ctx => {
    const { body } = ctx.event
    const sourceId = idOf(body.source_id)
    const applicationId = idOf(body.application_id)
    switch (body.action) {
      case 'unmap': return await unmapOrphan(deps, ctx, sourceId)
      case 'remove': return await removeGone(deps, ctx, applicationId)
      case 'remap':
      case 'reverify':
      case 'import': return await reverify(deps, ctx, applicationId, body.action === 'remap')
      default: return { note: 'not a known repair; nothing done' }
    }
  }
}

/** rhsm_orphan: RHSM maps a source that has no cloud-meter application (and no live registration here). */
async function unmapOrphan (deps: FlowDeps, ctx: EventContext, sourceId: string): Promise<Outcome> {
  if (sourceId === '') return { note: 'event names no source' }
  knowSource(ctx, sourceId)
  const existing = await deps.registrations.findBySource(ctx.tenant.orgId, sourceId)
  if (existing !== null && existing.state !== 'removed') return { note: 'source is registered in cloudoreg; nothing removed' }
  let applications: Application[]
  try {
    applications = await deps.sources.sourceApplications(sourceId, ctx.tenant)
  } catch (err) {
    if (!isNotFound(err)) throw err
    applications = []
  }
  const typeId = await deps.sources.cloudMeterTypeId(ctx.tenant)
  if (applications.some(a => a.applicationTypeId === typeId)) return { note: 'source has a cloud-meter application in sources-api; nothing removed' }
  await deps.rhsm.removeSourceAccounts({ orgId: ctx.tenant.orgId, sourceId })
  return { note: 'orphaned RHSM mapping removed' }
}

/** source_gone: the application, or its authentication's link, is gone from sources-api. */
async function removeGone (deps: FlowDeps, ctx: EventContext, applicationId: string): Promise<Outcome> {
  const existing = applicationId === '' ? null : await deps.registrations.findByApplication(applicationId)
  if (existing === null || existing.state === 'removed') return { note: 'no registration' }
  const refused = refusedIfForeign(existing, ctx)
  if (refused !== null) return refused
  if (await applicationState(deps, applicationId, tenantOf(existing)) === 'gone') {
    // As Application.destroy would have: a late create must not map it again.
    return { ...await removeMapping(deps, existing, ctx), tombstone: { applicationId, sourceId: existing.sourceId, orgId: existing.orgId } }
  }
  if (await linkGone(deps, existing)) return await removeMapping(deps, existing, ctx)
  return { note: 'application and its authentication still exist in sources-api; nothing removed' }
}

/** rhsm_missing, status_mismatch, arn_changed_without_event, unknown_to_cloudoreg: the create flow on what sources-api links now. */
async function reverify (deps: FlowDeps, ctx: EventContext, applicationId: string, remap: boolean): Promise<Outcome> {
  if (applicationId === '') return { note: 'event names no application' }
  const existing = await deps.registrations.findByApplication(applicationId)
  let linked
  try {
    linked = await deps.sources.authenticationsOfApplication(applicationId, ctx.tenant)
  } catch (err) {
    if (isNotFound(err)) return { note: 'application no longer exists' }
    throw err
  }
  if (remap && existing?.state === 'paused' && existing.mapped && existing.awsAccountId !== null) {
    // Paused: nothing is verified until the unpause, but the mapping it keeps must be there.
    knowSource(ctx, existing.sourceId)
    await deps.rhsm.addAwsAccount({ orgId: existing.orgId, awsAccountId: existing.awsAccountId, sourceId: existing.sourceId })
    return { note: 'paused: mapping restored in RHSM' }
  }
  const authenticationId = existing?.authenticationId != null && linked.includes(existing.authenticationId) ? existing.authenticationId : linked[0]
  if (authenticationId === undefined) return { note: 'application has no authentication' }
  return await verifyAndRegister(deps, ctx, { applicationId, authenticationId, whilePaused: 'store', remap })
}
