import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { context, ROOT_CONTEXT } from '@opentelemetry/api'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Agent } from 'undici'
import { createRoleVerifier, isStsOutage } from '../../aws/sts.js'
import { missingUpstreamSettings, type Config } from '../../config.js'
import { createHandlers } from '../../pipeline/handlers/index.js'
import { createScheduler, type Scheduler } from '../../pipeline/scheduler.js'
import { backoffDelay } from '../../backoff.js'
import { createRhsmClient, dryRunRhsm, type RhsmClient } from '../../rhsm/client.js'
import { createSourcesClient, type SourcesClient } from '../../sources/client.js'
import { kafkaConnection } from '../../kafka/client.js'
import { kafkaStatusSink } from '../../status/kafka-sink.js'
import { createStatusRelay, type StatusSink } from '../../status/relay.js'
import { httpStatusSink, noStatusSink } from '../../status/sinks.js'
import { tracedHandler, tracedRecordOutcome } from '../../tracing/pipeline.js'
import { createGate, type BreakerSettings, type Gate } from '../../upstream/breaker.js'
import { UpstreamError } from '../../upstream/errors.js'
import { SHARE_FLOOR, createRateBudgets, gatedDispatcher, type RateBudgets } from '../../upstream/rate-budget.js'

declare module 'fastify' {
  interface FastifyInstance {
    scheduler: Scheduler | null
    /** The upstreams' gates (circuit breakers and Retry-After holds), by key: `sources`, `rhsm`, `sts:<region>`. */
    upstreamGates: ReadonlyMap<string, Gate>
    /** The clients of sources-api and RHSM (RHSM_MODE's), for what else reads them (reconciliation); null until configured. */
    upstreams: { sources: SourcesClient, rhsm: RhsmClient } | null
    /** The AWS account cloudoreg verifies from (cached); what customers' trust policies name. */
    ownAwsAccount: () => Promise<string>
  }
}

/**
 * Shares the upstream budgets among the live replicas, by the events each holds (`demand`): each says
 * it is alive, and how much work it holds, every third of the time after which the others count it
 * dead (at most 2 s, at most a third of LEASE_MS). The embedded store is one replica's alone.
 */
function replicaHeartbeat (app: FastifyInstance, owner: string, budgets: RateBudgets, demand: () => number): { start: () => Promise<void>, stop: () => Promise<void> } {
  const everyMs = Math.min(2000, Math.floor(app.config.LEASE_MS / 3))
  let timer: NodeJS.Timeout | undefined
  let live = 1
  async function beat (): Promise<void> {
    const mine = demand()
    const census = await app.store.replicas.heartbeat(owner, everyMs * 3, mine)
    if (census.live !== live) app.log.info({ replicas: census.live }, 'replicas sharing the upstream rate budgets changed')
    live = census.live
    budgets.share(live, mine, census.demand)
  }
  return {
    async start () {
      if (app.store.embedded) return
      await beat().catch((err: Error) => app.log.warn({ err }, 'replica heartbeat failed'))
      timer = setInterval(() => {
        beat().catch(async (err: Error) => {
          if (await app.store.health.checkDown() !== true) app.log.warn({ err }, 'replica heartbeat failed')
        })
      }, everyMs).unref()
    },
    async stop () {
      clearInterval(timer)
      if (!app.store.embedded) await app.store.replicas.leave(owner).catch(() => {})
    }
  }
}

/** Wires upstream clients, handlers, the per-source scheduler and the status relay. */
async function pipeline (app: FastifyInstance): Promise<void> {
  const { config } = app
  const timeoutMs = config.UPSTREAM_TIMEOUT_MS
  const attempts = config.UPSTREAM_CALL_ATTEMPTS
  const observe = app.metrics.upstreamCall
  const breaker: BreakerSettings = {
    failureRate: config.BREAKER_FAILURE_PERCENT / 100,
    windowMs: config.BREAKER_WINDOW_MS,
    minCalls: config.BREAKER_MIN_CALLS,
    openMs: config.BREAKER_OPEN_MS,
    maxHoldMs: config.RETRY_AFTER_MAX_SECONDS * 1000
  }
  // 5xx and no answer count against an upstream; answers about one source (404, 400, AccessDenied) never do.
  const httpOutage = (err: Error): boolean => err instanceof UpstreamError && err.kind === 'transient' && err.status !== 429
  // A hold an upstream asked of one replica is every replica's (no echo: a heard hold is not told again).
  const share = (key: string) => (until: number): void => {
    app.store.holds.publish(key, until).catch((err: Error) => app.log.warn({ target: key, error: err.message }, 'could not tell the other replicas of an upstream hold'))
  }
  const gates = new Map<string, Gate>([
    ['sources', createGate({ key: 'sources', target: 'sources', settings: breaker, isOutage: httpOutage, log: app.log, onHold: share('sources') })],
    ['rhsm', createGate({ key: 'rhsm', target: 'rhsm', settings: breaker, isOutage: httpOutage, log: app.log, onHold: share('rhsm') })],
    [`sts:${config.AWS_REGION}`, createGate({ key: `sts:${config.AWS_REGION}`, target: 'sts', settings: breaker, isOutage: isStsOutage, log: app.log, onHold: share(`sts:${config.AWS_REGION}`) })]
  ])
  app.decorate('upstreamGates', gates)
  app.metrics.watchGates(() => [...gates.values()].map(g => g.stats()))
  // Targets this replica has no gate for are ignored; the gate caps the hold at RETRY_AFTER_MAX_SECONDS.
  const heard = app.store.holds.listen((target, until) => gates.get(target)?.holdUntil(until), app.log)
  app.addHook('onClose', async () => {
    await heard.close()
    for (const g of gates.values()) g.close()
  })
  // Totals across replicas; each replica paces its calls at its share (src/upstream/rate-budget.ts),
  // starting from a fifth of each budget (SHARE_FLOOR) when replicas share the database.
  const budgets = createRateBudgets({ sts: config.STS_MAX_RPS, rhsm: config.RHSM_MAX_RPS, sources: config.SOURCES_MAX_RPS }, (upstream, rate) => {
    app.log.warn({ target: upstream, rps: Math.round(rate * 100) / 100 }, 'upstream throttled our calls; this replica slows down, then speeds up again gradually')
  }, app.store.embedded ? 1 : SHARE_FLOOR)
  // Needs only AWS credentials: the account is known even while other upstreams are not configured.
  const sts = createRoleVerifier({ region: config.AWS_REGION, endpoint: config.AWS_STS_ENDPOINT, timeoutMs, attempts, maxSockets: config.CONCURRENCY * 2, observe, rate: budgets.gates.sts, gate: gates.get(`sts:${config.AWS_REGION}`) })
  app.decorate('ownAwsAccount', sts.ownAccountId)
  app.addHook('onClose', async () => { sts.close() })
  const missing = missingUpstreamSettings(config)
  if (missing.length > 0) {
    app.log.warn({ missing }, `events will be stored but not processed until ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} configured`)
    app.decorate('scheduler', null)
    app.decorate('upstreams', null)
    return
  }
  const sourcesAgent = new Agent({ connections: config.CONCURRENCY * 2, keepAliveTimeout: 30_000 })
  const rhsmAgent = new Agent({
    connections: config.CONCURRENCY * 2,
    keepAliveTimeout: 30_000,
    connect: {
      cert: config.RHSM_CLIENT_CERT ? readFileSync(config.RHSM_CLIENT_CERT) : undefined,
      key: config.RHSM_CLIENT_KEY ? readFileSync(config.RHSM_CLIENT_KEY) : undefined,
      ca: config.RHSM_CA ? readFileSync(config.RHSM_CA) : undefined
    }
  })
  const sources = createSourcesClient({ baseUrl: config.SOURCES_API_URL!, psk: config.SOURCES_PSK!, dispatcher: gatedDispatcher(sourcesAgent, budgets.gates.sources), timeoutMs, attempts, observe, gate: gates.get('sources') })
  const liveRhsm = createRhsmClient({ baseUrl: config.RHSM_API_URL!, dispatcher: gatedDispatcher(rhsmAgent, budgets.gates.rhsm), timeoutMs, attempts, observe, gate: gates.get('rhsm') })
  const rhsm = config.RHSM_MODE === 'dry-run' ? dryRunRhsm(app.log, liveRhsm) : liveRhsm
  app.decorate('upstreams', { sources, rhsm })

  const sinks: Record<Config['statusSink'], () => StatusSink> = {
    kafka: () => kafkaStatusSink({ connection: kafkaConnection(config), topic: config.SOURCES_STATUS_TOPIC, log: app.log }),
    http: () => httpStatusSink(sources, app.tracing.enabled),
    none: () => noStatusSink
  }
  // Random over the upper half, so that the retries of many sources spread out.
  const eventBackoff = { firstMs: config.RETRY_BASE_DELAY_MS, maxMs: config.RETRY_MAX_DELAY_MS, jitter: 0.5 }
  const relay = createStatusRelay({
    outbox: app.store.outbox,
    sink: sinks[config.statusSink](),
    log: app.log,
    pollMs: 2000,
    databaseDown: app.store.health.checkDown,
    // A message that cannot be delivered is sent again with the events' backoff, then parked.
    retry: { maxAttempts: config.STATUS_MAX_ATTEMPTS, delayMs: attempts => backoffDelay(eventBackoff, attempts) }
  })
  const leases = app.store.leases(`${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`, config.LEASE_MS)
  // The events this replica holds in memory (leased, waiting or running): the work its share is for.
  const heartbeat = replicaHeartbeat(app, leases.owner, budgets, () => scheduler.stats().queuedEvents)
  let handlers = createHandlers({ sources, sts, rhsm, registrations: app.store.registrations, checkReuseMs: config.CHECK_REUSE_SECONDS * 1000 })
  let record = app.store.recordOutcome
  if (app.tracing.enabled) {
    handlers = new Map([...handlers].map(([type, handler]) => [type, tracedHandler(type, handler, leases.owner)]))
    record = tracedRecordOutcome(record)
  }
  const scheduler = createScheduler({
    inbox: app.store.inbox,
    handlerFor: type => handlers.get(type),
    leases,
    leaseMs: config.LEASE_MS,
    pollMs: 1000,
    recordOutcome: record,
    onOutcome: relay.wake,
    concurrency: config.CONCURRENCY,
    window: config.INBOX_WINDOW,
    retry: { maxAttempts: config.RETRY_MAX_ATTEMPTS, backoff: eventBackoff },
    log: app.log,
    databaseDown: app.store.health.checkDown,
    metrics: app.metrics,
    gates
  })
  app.decorate('scheduler', scheduler)
  // The scheduler's own work (reading the inbox, leases) belongs to no push's trace.
  app.store.inbox.onAppend(() => { context.with(ROOT_CONTEXT, scheduler.wake) })

  app.addHook('onReady', async () => {
    // The embedded store is this process's alone: leases in it were left by a previous run that
    // died, and its sources need not wait LEASE_MS for them to expire.
    if (app.store.embedded) {
      const cleared = await leases.clearAll()
      if (cleared > 0) app.log.warn({ leases: cleared }, 'cleared the leases of a previous run that did not shut down cleanly')
    }
    // Ready only once it hears the other replicas' holds (or failed to, and keeps trying).
    await heard.started
    await heartbeat.start()
    scheduler.start()
    relay.start()
    const shadow = [
      ...(config.RHSM_MODE === 'dry-run' ? ['changing nothing in RHSM'] : []),
      ...(config.statusSink === 'none' ? ['sending no status'] : [])
    ]
    const settings = { statusSink: config.statusSink, rhsmMode: config.RHSM_MODE, concurrency: config.CONCURRENCY }
    if (shadow.length > 0) app.log.warn(settings, `pipeline started in shadow mode: verifying and recording, ${shadow.join(' and ')}`)
    else app.log.info(settings, 'pipeline started')
  })
  // Work in flight ends while the database is still there (the close order is in src/app.ts).
  app.addHook('preClose', async () => {
    // One grace period for both: running attempts first, then what they reported.
    const deadline = Date.now() + config.SHUTDOWN_GRACE_MS
    await scheduler.stop(config.SHUTDOWN_GRACE_MS)
    await relay.stop(Math.max(0, deadline - Date.now()))
    // Whatever is still running past the grace fails its lease check and stays pending for another replica.
    await scheduler.releaseLeases().catch((err: Error) => app.log.warn({ err }, 'releasing leases failed; they expire on their own'))
    await heartbeat.stop()
    await Promise.all([sourcesAgent.close(), rhsmAgent.close()])
  })
}

export default fp(pipeline, { name: 'pipeline', dependencies: ['store', 'metrics', 'tracing'] })
