/**
 * What a reconciliation sweep can find wrong between cloudoreg, sources-api and RHSM. The names are
 * a contract (the report, the metric's `class` label, the alerts and the CLI use them).
 */
export const DRIFT_CLASSES = [
  'rhsm_orphan',
  'rhsm_missing',
  'status_mismatch',
  'arn_changed_without_event',
  'source_gone',
  'unknown_to_cloudoreg'
] as const
export type DriftClass = typeof DRIFT_CLASSES[number]

/** The repair a real run queues for a class, as the `cloudoreg.reconcile` event's `action`. */
export type RepairAction = 'unmap' | 'remap' | 'reverify' | 'remove' | 'import'

export const REPAIR_OF: Record<DriftClass, RepairAction> = {
  rhsm_orphan: 'unmap',
  rhsm_missing: 'remap',
  status_mismatch: 'reverify',
  arn_changed_without_event: 'reverify',
  source_gone: 'remove',
  unknown_to_cloudoreg: 'import'
}

export interface DriftItem {
  class: DriftClass
  sourceId: string | null
  applicationId: string | null
  orgId: string | null
  rhsmAccountId: string | null
  detail: string
  /** The repair a real run makes, in words. */
  repair: string
}

export type DriftCounts = Record<DriftClass, number>

export function noDrift (): DriftCounts {
  return Object.fromEntries(DRIFT_CLASSES.map(c => [c, 0])) as DriftCounts
}
