import type { Tenant } from '../identity.js'
import { ROLE_ARN } from '../pipeline/registration-flow.js'
import type { RhsmClient } from '../rhsm/client.js'
import type { SourcesClient } from '../sources/client.js'
import type { ReconcileStore, SweptRegistration } from '../store/reconcile.js'
import type { DriftClass, DriftItem } from './drift.js'

export interface SweepDeps {
  sources: SourcesClient
  rhsm: Pick<RhsmClient, 'enabledAwsAccounts'>
  store: Pick<ReconcileStore, 'orgRegistrations'>
  pageSize: number
  /** False in shadow mode (STATUS_SINK=none): cloudoreg reports nothing, so there is no status to compare. */
  compareStatus: boolean
}

/** A drift item and what a repair event needs besides it. */
export interface Found extends DriftItem {
  orgId: string
  sourceId: string
  accountNumber: string | null
}

interface App { sourceId: string, availabilityStatus: string }

/** Every page of a list, gathered (one org's worth). */
async function gather<T> (pages: AsyncGenerator<T[]>): Promise<T[]> {
  const all: T[] = []
  for await (const page of pages) all.push(...page)
  return all
}

/** What sources-api holds of one org's cloud-meter applications: each with its linked authentications' ARNs. */
async function sourcesView (deps: SweepDeps, tenant: Tenant): Promise<{ apps: Map<string, App>, arns: Map<string, Map<string, string>> }> {
  // The three lists are independent: read at once, joined after.
  const [applications, links, authentications] = await Promise.all([
    gather(deps.sources.cloudMeterApplications(tenant, deps.pageSize)),
    gather(deps.sources.applicationAuthentications(tenant, deps.pageSize)),
    gather(deps.sources.arnAuthentications(tenant, deps.pageSize))
  ])
  const apps = new Map(applications.map(a => [a.id, { sourceId: a.sourceId, availabilityStatus: a.availabilityStatus }]))
  // authentication → the cloud-meter application it is linked to.
  const linked = new Map(links.filter(l => apps.has(l.applicationId)).map(l => [l.authenticationId, l.applicationId]))
  const arns = new Map<string, Map<string, string>>()
  for (const a of authentications) {
    const applicationId = linked.get(a.id)
    if (applicationId === undefined || a.resourceType !== 'Application') continue
    // The public list hides the password, where an ARN may be kept instead of the username.
    const arn = a.username !== '' ? a.username : (await deps.sources.getAuthentication(a.id, tenant)).password
    if (arn === '') continue
    if (!arns.has(applicationId)) arns.set(applicationId, new Map())
    arns.get(applicationId)!.set(a.id, arn)
  }
  return { apps, arns }
}

/** RHSM's mappings of the org made through sources: source id → AWS account (unverified ones count as absent). */
async function rhsmView (deps: SweepDeps, orgId: string): Promise<Map<string, { id: string, verified: boolean }>> {
  const bySource = new Map<string, { id: string, verified: boolean }>()
  for await (const page of deps.rhsm.enabledAwsAccounts(orgId, deps.pageSize)) {
    for (const a of page) if (a.sourceId !== null) bySource.set(a.sourceId, { id: a.id, verified: a.verified })
  }
  return bySource
}

/**
 * Compares one org across the three systems. Memory holds one org's worth of each list, never the
 * whole of any: sources-api and RHSM are read page by page, cloudoreg one org at a time.
 */
export async function sweepOrg (deps: SweepDeps, orgId: string): Promise<Found[]> {
  // sources-api scopes by org; the account number, when cloudoreg knows one, goes along as its events carry it.
  const { registrations, destroyed } = await deps.store.orgRegistrations(orgId)
  const tenant: Tenant = { orgId, accountNumber: registrations.find(r => r.accountNumber !== null)?.accountNumber ?? null }
  const [{ apps, arns }, mapped] = await Promise.all([sourcesView(deps, tenant), rhsmView(deps, orgId)])

  const found: Found[] = []
  const add = (cls: DriftClass, r: { sourceId: string, applicationId: string | null, accountNumber: string | null }, rhsmAccountId: string | null, detail: string, repair: string): void => {
    found.push({ class: cls, orgId, sourceId: r.sourceId, applicationId: r.applicationId, accountNumber: r.accountNumber, rhsmAccountId, detail, repair })
  }
  const gone = new Set<string>()
  const known = new Set<string>()

  for (const r of registrations) {
    known.add(r.applicationId)
    // A pending registration is being decided; a removed one is meant to hold nothing.
    if (r.state === 'pending' || r.state === 'removed') continue
    const drift = compare(deps, r, apps.get(r.applicationId), arns.get(r.applicationId), mapped.get(r.sourceId))
    if (drift === null) continue
    if (drift.cls === 'source_gone') gone.add(r.sourceId)
    add(drift.cls, r, drift.rhsm, drift.detail, drift.repair)
  }

  for (const [applicationId, app] of apps) {
    if (known.has(applicationId) || destroyed.has(applicationId)) continue
    const linked = arns.get(applicationId)
    if (linked === undefined) continue
    const [[authenticationId, arn]] = linked
    add('unknown_to_cloudoreg', { sourceId: app.sourceId, applicationId, accountNumber: tenant.accountNumber }, mapped.get(app.sourceId)?.id ?? null,
      `cloud-meter application ${applicationId} has authentication ${authenticationId} (${arn}) that cloudoreg has never seen`,
      'import: verify the role and register the source (mapping it in RHSM, reporting its status)')
  }

  const cloudMeterSources = new Set([...apps.values()].map(a => a.sourceId))
  for (const [sourceId, account] of mapped) {
    if (cloudMeterSources.has(sourceId) || gone.has(sourceId)) continue
    add('rhsm_orphan', { sourceId, applicationId: null, accountNumber: tenant.accountNumber }, account.id,
      `RHSM maps AWS account ${account.id} to source ${sourceId}, which has no cloud-meter application in sources-api`,
      `remove RHSM's mapping of source ${sourceId} (once sources-api confirms it)`)
  }
  return found
}

interface Drift { cls: DriftClass, rhsm: string | null, detail: string, repair: string }

/** One registration against sources-api and RHSM: the first thing wrong, in order of what a repair must fix first. */
function compare (deps: SweepDeps, r: SweptRegistration, app: App | undefined, arns: Map<string, string> | undefined,
  account: { id: string, verified: boolean } | undefined): Drift | null {
  const rhsm = account?.id ?? null
  const remove = `remove the RHSM mapping of source ${r.sourceId} and mark the registration removed (once sources-api confirms it)`
  if (app === undefined || app.sourceId !== r.sourceId) {
    return { cls: 'source_gone', rhsm, detail: `cloud-meter application ${r.applicationId} of source ${r.sourceId} no longer exists in sources-api`, repair: remove }
  }
  const current = r.authenticationId === null ? undefined : arns?.get(r.authenticationId)
  if (current === undefined) {
    const [other] = arns ?? []
    if (other === undefined) {
      if (r.authenticationId === null) return null
      return { cls: 'source_gone', rhsm, detail: `authentication ${r.authenticationId} is no longer linked to application ${r.applicationId}`, repair: remove }
    }
    return {
      cls: 'arn_changed_without_event',
      rhsm,
      detail: `application ${r.applicationId} now has authentication ${other[0]} (${other[1]}), not ${r.authenticationId ?? 'none'} (${r.roleArn ?? 'no ARN'})`,
      repair: 're-verify with the current authentication (re-mapping RHSM if the AWS account changed) and report'
    }
  }
  // No ARN stored: the last check stopped before reading one (an invalid ARN, none at all), nothing to compare.
  if (r.roleArn !== null && current !== r.roleArn) {
    const changedAccount = ROLE_ARN.exec(current)?.[2] !== r.awsAccountId ? ' (another AWS account)' : ''
    return {
      cls: 'arn_changed_without_event',
      rhsm,
      detail: `authentication ${r.authenticationId} holds ${current}, registered with ${r.roleArn}${changedAccount}`,
      repair: 're-verify the new ARN (re-mapping RHSM if the AWS account changed) and report'
    }
  }
  if (r.mapped && (account === undefined || account.id !== r.awsAccountId || !account.verified)) {
    const held = account === undefined ? 'holds no mapping for it' : `maps it to ${account.id}${account.verified ? '' : ' (unverified)'}`
    return {
      cls: 'rhsm_missing',
      rhsm,
      detail: `source ${r.sourceId} is mapped to AWS account ${r.awsAccountId ?? '?'} here, RHSM ${held}`,
      repair: `re-verify and map AWS account ${r.awsAccountId ?? '?'} for source ${r.sourceId} in RHSM`
    }
  }
  // Paused sources report nothing; an unsent status has not reached sources-api yet.
  if (deps.compareStatus && r.state !== 'paused' && r.lastStatus !== null && r.lastStatusSent && app.availabilityStatus !== r.lastStatus) {
    return {
      cls: 'status_mismatch',
      rhsm,
      detail: `sources-api shows application ${r.applicationId} ${app.availabilityStatus || 'without a status'}, cloudoreg last reported ${r.lastStatus}`,
      repair: 're-verify and report the status again'
    }
  }
  return null
}
