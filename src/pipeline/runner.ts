import { setMaxListeners } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import PQueue from 'p-queue'
import { backoffDelay, type Backoff } from '../backoff.js'
import { applicationOfKey } from '../events/keys.js'
import { LANES } from '../events/lanes.js'
import { loggedId, type Logger } from '../log.js'
import type { Tenant } from '../identity.js'
import type { Metrics } from '../metrics.js'
import type { LeasableEvent } from '../store/leases.js'
import type { Inbox, InboxEvent } from '../store/inbox.js'
import { LeaseLostError, type EventEnd, type Outcome } from '../store/outcomes.js'
import { parkedNote, parkingFor, type Gate, type Release } from '../upstream/breaker.js'
import { isRetryable, UpstreamError } from '../upstream/errors.js'
import { withCallPriority } from '../upstream/rate-budget.js'
import { traceIdOf } from '../tracing/context.js'
import { correlationOf } from '../tracing/correlation.js'
import type { LeaseKeeper } from './lease-keeper.js'
import type { AttemptWrite } from '../store/attempts.js'
import { decidedBy, failureOf, stepOf } from './attempts.js'

export interface EventContext {
  event: InboxEvent
  tenant: Tenant
  /** 1 for the first attempt. */
  attempt: number
  /** Carries the event's correlation (event, source and trace ids); knowSource adds the source id once learnt. */
  log: Logger
  /** Survives from one attempt to the next of this event (not across restarts). */
  memo: Record<string, unknown>
  /** The source the event concerns, once known; a handler sets it (with knowSource) when it learns it from sources-api. */
  sourceId: string | null
}

export interface EventHandler {
  handle: (ctx: EventContext) => Promise<Outcome>
  /** What to record when the event's attempts run out. */
  exhausted: (ctx: EventContext, lastError: string) => Promise<Outcome>
}

export interface RetryPolicy {
  maxAttempts: number
  /** Between the attempts of one event. */
  backoff: Backoff
}

export interface RunnerOptions {
  inbox: Pick<Inbox, 'scheduleRetry'>
  keeper: Pick<LeaseKeeper, 'owner' | 'isLost'>
  /** Must reject with LeaseLostError, writing nothing, when the event's lease is no longer this replica's. */
  recordOutcome: (end: EventEnd, outcome: Outcome) => Promise<void>
  /** Called after an outcome committed, e.g. to wake the status relay. */
  onOutcome: () => void
  /** Attempts running at once, across sources. */
  concurrency: number
  retry: RetryPolicy
  /** Aborted at shutdown: no new attempt starts, waiting retries stay stored. */
  stopping: AbortSignal
  log: Logger
  metrics: Metrics
  /**
   * The upstreams' gates (breakers and holds), by key: an attempt that failed on an open breaker or
   * was throttled is not counted; the event waits at the gate, keeping its place at the head of its source.
   */
  gates?: ReadonlyMap<string, Gate>
}

export interface Runner {
  /** Runs one event's attempts until it ends, its lease is lost, or shutdown. */
  run: (event: LeasableEvent, handler: EventHandler) => Promise<void>
  /** Resolves when no attempt is running. */
  onIdle: () => Promise<void>
  running: () => number
}

/** One line per finished event: what support greps for first. */
export function logFinished (log: Logger, event: InboxEvent, e: { state: EventEnd['state'], outcome: Outcome, attempts: number, durationMs: number, sourceId: string | null }): void {
  const { registration, status } = e.outcome
  log.info({
    eventId: event.id,
    eventType: event.eventType,
    traceId: traceIdOf(event.trace.traceparent),
    orgId: event.orgId,
    sourceId: e.sourceId ?? registration?.sourceId ?? event.sourceId,
    applicationId: registration?.applicationId ?? applicationOfKey(event.queueKey),
    state: e.state,
    outcome: e.outcome.note,
    status: status?.status ?? null,
    errorCode: status?.status === 'unavailable' ? registration?.lastErrorCode ?? null : null,
    attempts: e.attempts,
    durationMs: e.durationMs
  }, 'event finished')
}

/** Free slots go to the customer lane first, then re-checks, then bulk work; in queueing order within a lane. */
function slotPriority (event: LeasableEvent): number {
  return LANES.bulk - event.keyLane
}

/**
 * Slots the re-check and bulk lanes may hold at once: a quarter of them (none of one or two) stay free for
 * customer actions, so that a create during a wave of re-checks neither waits for a slot nor shares the
 * CPU with a full pool of them. (A busy process runs its attempts in turn: each takes as long as the
 * number running.)
 */
export function lowerLaneSlots (concurrency: number): number {
  return Math.max(1, concurrency - Math.ceil(concurrency / 4))
}

/** A database hiccup while recording an outcome: retried until it passes. */
const RECORD_BACKOFF: Backoff = { firstMs: 500, maxMs: 30_000, jitter: 0.5 }

/** Runs events' attempts in a global pool of slots; an event waiting for its retry holds no slot. */
export function createRunner (o: RunnerOptions): Runner {
  const slots = new PQueue({ concurrency: o.concurrency })
  // Lower-lane attempts pass here first: at most lowerLaneSlots of them compete for the slots.
  const lower = new PQueue({ concurrency: lowerLaneSlots(o.concurrency) })
  const inSlot = async <T>(event: LeasableEvent, task: () => Promise<T>): Promise<T> => {
    const priority = slotPriority(event)
    if (event.keyLane === LANES.customer) return await slots.add(task, { priority })
    return await lower.add(async () => await slots.add(task, { priority }), { priority })
  }
  // Every event waiting for its retry listens for the stop.
  setMaxListeners(0, o.stopping)

  async function end (event: LeasableEvent, attempts: number, state: EventEnd['state'], outcome: Outcome, startedAt: number, sourceId: string | null, log: Logger, attempt: AttemptWrite): Promise<void> {
    const write = { eventId: event.id, orgId: event.orgId, accountNumber: event.accountNumber, attempts, state, leaseKey: event.leaseKey, leaseOwner: o.keeper.owner, sourceId, trace: event.trace, attempt }
    // The upstream work is done; losing its record to a database hiccup would redo it, so insist.
    for (let failures = 1; ; failures++) {
      try {
        await o.recordOutcome(write, outcome)
        break
      } catch (err) {
        if (err instanceof LeaseLostError) {
          log.warn('lease lost before the outcome was recorded; the new holder runs the event again')
          return
        }
        if (o.stopping.aborted) throw err
        log.error({ err }, 'recording an outcome failed; retrying')
        await sleep(backoffDelay(RECORD_BACKOFF, failures))
      }
    }
    o.metrics.eventEnded(event.eventType, state, (Date.now() - startedAt) / 1000)
    logFinished(o.log, event, { state, outcome, attempts, durationMs: Date.now() - startedAt, sourceId })
    if (outcome.status) o.onOutcome()
  }

  async function run (event: LeasableEvent, handler: EventHandler): Promise<void> {
    const correlation = correlationOf(event)
    // Recorded with the event: only what the event names by itself (its stored source) or what sources-api says.
    let sourceId = event.sourceId
    const loggedSource = sourceId ?? correlation.sourceId
    let log = o.log.child({
      eventType: event.eventType,
      queueKey: event.leaseKey,
      deliveryId: loggedId(event.deliveryId),
      eventId: correlation.eventId,
      traceId: correlation.traceId,
      ...(loggedSource === undefined ? {} : { sourceId: loggedSource })
    })
    const tenant: Tenant = { orgId: event.orgId, accountNumber: event.accountNumber }
    const startedAt = Date.now()
    let attempts = event.attempts
    let wakeAt = event.nextAttemptAt.getTime()
    const memo: Record<string, unknown> = {}
    /** Owed to the gate that let this event through, once the attempt it let through has ended. */
    let release: Release | undefined
    /** The gate this event last waited at: the store is told once per gate, not per probe. */
    let parkedAt: string | undefined

    /** Waits at a gate without spending the attempt that failed there (nor recording it); false when shutdown came first. */
    async function park (gate: Gate, err: Error): Promise<boolean> {
      attempts--
      if (parkedAt !== gate.key) {
        parkedAt = gate.key
        const note = parkedNote(gate.key, err.message)
        log.debug({ attempts, target: gate.key, error: note }, 'upstream unavailable: the event waits for it, spending no attempt')
        // Shown by the status API while the event waits; next_attempt_at now, so that a restart tries at once.
        await o.inbox.scheduleRetry(event.id, attempts, new Date(), note, sourceId)
          .catch((e: Error) => log.error({ err: e }, 'storing the wait failed'))
      }
      release = await gate.park(o.stopping)
      return release !== undefined
    }

    try {
      while (!o.stopping.aborted && !o.keeper.isLost(event.leaseKey)) {
        if (wakeAt > Date.now()) {
          try {
            await sleep(wakeAt - Date.now(), undefined, { signal: o.stopping })
          } catch {
            return
          }
        }
        attempts++
        const ctx: EventContext = { event, tenant, attempt: attempts, log, memo, sourceId }
        type Attempt = { outcome: Outcome, err?: undefined } | { outcome?: undefined, err: Error }
        let attemptStarted = new Date()
        const result = await inSlot(event, async (): Promise<Attempt | undefined> => {
          // Queued for a slot when shutdown began: leave the event pending for the next start.
          if (o.stopping.aborted) return undefined
          attemptStarted = new Date()
          try {
            // Its upstream calls wait at the rate gates by the same lane as for the slot.
            return { outcome: await withCallPriority(event.keyLane, async () => await handler.handle(ctx)) }
          } catch (err) {
            return { err: err as Error }
          }
        })
        // The gate that let this attempt through may let the next one go.
        release?.()
        release = undefined
        if (result === undefined) return
        const ran = { attempt: attempts, startedAt: attemptStarted, durationMs: Date.now() - attemptStarted.getTime(), replica: o.keeper.owner }
        // What the attempt learnt (the source id) goes on every later line about the event.
        log = ctx.log
        sourceId = ctx.sourceId
        if (result.outcome !== undefined) {
          await end(event, attempts, 'done', result.outcome, startedAt, sourceId, log, { ...ran, result: 'done', ...decidedBy(result.outcome) })
          return
        }
        const err = result.err
        // An upstream down or asking us to wait: not this event's failure; it keeps its place and waits.
        const gate = o.gates === undefined ? undefined : parkingFor(o.gates, err)
        if (gate !== undefined) {
          if (!await park(gate, err)) return
          wakeAt = Date.now()
          continue
        }
        // Our call rate was refused, which says nothing about the event: the attempt is not spent.
        if (err instanceof UpstreamError && err.kind === 'throttled') attempts--
        o.metrics.eventAttemptFailed(event.eventType)
        const misconfigured = err instanceof UpstreamError && err.kind === 'misconfigured'
        if (misconfigured) {
          o.metrics.misconfigured(err.target)
          log.error({ target: err.target, status: err.status }, 'an upstream refused cloudoreg\'s own credentials; fix the configuration')
        }
        const message = err.message.slice(0, 1000)
        const failure = failureOf(err, stepOf(ctx.memo), message)
        // Our own misconfiguration is never the customer's failure: it waits for an operator, however long.
        if (!misconfigured && (!isRetryable(err) || attempts >= o.retry.maxAttempts)) {
          log.warn({ attempts, error: message }, 'giving up on event')
          const outcome = await handler.exhausted(ctx, message)
          await end(event, attempts, 'dead', outcome, startedAt, sourceId, log,
            { ...ran, result: 'dead', ...failure, outcomeCode: outcome.registration?.lastErrorCode ?? null })
          return
        }
        wakeAt = Date.now() + backoffDelay(o.retry.backoff, Math.max(1, attempts))
        log.info({ attempts, error: message, retryInMs: wakeAt - Date.now() }, 'event attempt failed; will retry')
        // Only the restart schedule is lost if this write fails: the in-memory retry goes on.
        await o.inbox.scheduleRetry(event.id, attempts, new Date(wakeAt), message, sourceId, { ...ran, result: 'retry', ...failure })
          .catch((e: Error) => log.error({ err: e }, 'storing the retry time failed'))
      }
    } finally {
      release?.()
    }
  }

  return {
    run,
    onIdle: async () => {
      await lower.onIdle()
      await slots.onIdle()
    },
    running: () => slots.pending
  }
}
