import { setTimeout as sleep } from 'node:timers/promises'
import { RECONCILE_EVENT, type IncomingEvent } from '../events/event.js'
import { appKey, sourceKey } from '../events/keys.js'
import type { Logger } from '../log.js'
import { InboxBusy, type Inbox } from '../store/inbox.js'
import type { ReconcileStore } from '../store/reconcile.js'
import { noDrift, REPAIR_OF, type DriftItem } from './drift.js'
import { sweepOrg, type Found, type SweepDeps } from './sweep.js'

export interface RunDeps extends SweepDeps {
  store: ReconcileStore
  inbox: Pick<Inbox, 'append'>
  log: Logger
  /** Orgs swept at once. */
  concurrency: number
  /** Aborted at shutdown: the run stops and is marked failed. */
  signal: AbortSignal
  /** Extends the run's lease; false once another replica holds it. */
  keepLease: () => Promise<boolean>
  /** How often a real run looks whether its repairs have ended. */
  pollMs: number
}

const ORG_ID = /^[0-9]{1,32}$/

/** The repair of one drift item, queued like any event: behind the source's others, shown in its history. */
export function repairEvent (runId: string, seq: number, f: Found): IncomingEvent {
  return {
    eventType: RECONCILE_EVENT,
    orgId: f.orgId,
    accountNumber: f.accountNumber,
    body: { source_id: f.sourceId, application_id: f.applicationId, action: REPAIR_OF[f.class], class: f.class, run_id: runId, requested_by: 'reconcile' },
    queueKey: f.applicationId === null ? sourceKey(f.sourceId) : appKey(f.applicationId),
    dedupeKey: `reconcile:${runId}:${seq}`,
    dedupeTtlMs: null,
    deliveryId: null
  }
}

/** Appends, waiting while the inbox is busy with pushes (they go first). */
async function appendPatiently (deps: RunDeps, events: IncomingEvent[]): Promise<number[]> {
  for (;;) {
    try {
      return (await deps.inbox.append(events)).filter((id): id is number => id !== null)
    } catch (err) {
      if (!(err instanceof InboxBusy)) throw err
      await sleep(1000, undefined, { signal: deps.signal })
    }
  }
}

/** A source with events pending is being changed right now: what the sweep saw of it is not drift. */
async function settled (deps: RunDeps, found: Found[]): Promise<Found[]> {
  const keys = (f: Found): string[] => f.applicationId === null ? [sourceKey(f.sourceId)] : [appKey(f.applicationId), sourceKey(f.sourceId)]
  const busy = await deps.store.pendingKeys([...new Set(found.flatMap(keys))])
  return found.filter(f => !keys(f).some(k => busy.has(k)))
}

/**
 * One reconciliation run: every org cloudoreg or sources-api knows, `concurrency` at a time; a real
 * run queues a repair per drift item and ends once they all have. Progress and drift are written to
 * the store about once a second, so that any replica can answer for the run.
 */
export async function runReconcile (runId: string, dryRun: boolean, deps: RunDeps): Promise<void> {
  const started = Date.now()
  const counts = noDrift()
  let unwritten: DriftItem[] = []
  let checked = 0
  let total: number | null = null
  const repairs: number[] = []
  let seq = 0
  let lastWrite = 0
  let writing: Promise<void> | null = null

  const write = async (): Promise<void> => {
    const newDrift = unwritten
    unwritten = []
    lastWrite = Date.now()
    await deps.store.progress(runId, { checked, total, counts: { ...counts }, newDrift, repairsQueued: repairs.length })
    if (!await deps.keepLease()) throw new Error('the reconciliation lease was lost to another replica')
  }
  // One write at a time; workers that finish an org meanwhile leave theirs for the next.
  const writeSoon = async (): Promise<void> => {
    if (writing !== null || Date.now() - lastWrite < 1000) return
    writing = write().finally(() => { writing = null })
    await writing
  }

  try {
    const orgs = new Set(await deps.store.orgs())
    for await (const page of deps.sources.allSources(deps.pageSize)) {
      for (const s of page) if (ORG_ID.test(s.orgId)) orgs.add(s.orgId)
    }
    const queue = [...orgs].sort()
    orgs.clear()
    total = queue.length
    await write()

    // One worker's failure stops the others before their next org: a failed run queues no more repairs.
    let failed = false
    const worker = async (): Promise<void> => {
      for (let org = queue.pop(); org !== undefined; org = queue.pop()) {
        if (failed) return
        deps.signal.throwIfAborted()
        const found = await settled(deps, await sweepOrg(deps, org))
        for (const f of found) counts[f.class]++
        unwritten.push(...found)
        if (!dryRun && found.length > 0) repairs.push(...await appendPatiently(deps, found.map(f => repairEvent(runId, seq++, f))))
        checked++
        await writeSoon()
      }
    }
    const guarded = async (): Promise<void> => {
      try {
        await worker()
      } catch (err) {
        failed = true
        throw err
      }
    }
    await Promise.all(Array.from({ length: Math.max(1, deps.concurrency) }, guarded))
    await writing
    await write()
    const found = Object.values(counts).reduce((a, b) => a + b, 0)
    deps.log.info({ runId, dryRun, orgs: total, counts, durationMs: Date.now() - started }, `reconciliation swept ${total} orgs: ${found} drift items`)

    // A real run is done once its repairs are: the next run then sees what they changed.
    while (repairs.length > 0 && await deps.store.pendingOf(repairs) > 0) {
      await sleep(deps.pollMs, undefined, { signal: deps.signal })
      await write()
    }
    await deps.store.finish(runId, 'done', null)
    if (!dryRun) deps.log.info({ runId, repairs: repairs.length, durationMs: Date.now() - started }, 'reconciliation repairs ended')
  } catch (err) {
    const message = deps.signal.aborted ? 'stopped: the replica shut down' : (err as Error).message.slice(0, 500)
    deps.log.warn({ runId, err }, `reconciliation run failed: ${message}`)
    await (writing as Promise<void> | null)?.catch(() => {})
    await deps.store.finish(runId, 'failed', message).catch((e: Error) => deps.log.warn({ err: e }, 'recording the failed run failed'))
  }
}
