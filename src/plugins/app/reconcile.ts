import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Gauge } from 'prom-client'
import { DRIFT_CLASSES } from '../../reconcile/drift.js'
import { runReconcile } from '../../reconcile/run.js'
import { LANES } from '../../events/lanes.js'
import { withCallPriority } from '../../upstream/rate-budget.js'

export type StartResult = { ok: true, id: string } | { ok: false, reason: 'busy' | 'unconfigured' }

export interface Reconciler {
  /** Starts a run in the background, unless one runs anywhere (one lease for every replica) or upstreams are not configured. */
  start: (dryRun: boolean) => Promise<StartResult>
  /** A run whose replica has not written progress for this long reads as failed. */
  staleMs: number
}

declare module 'fastify' {
  interface FastifyInstance {
    reconcile: Reconciler
  }
}

/** The lease every replica's runs share: one run at a time across them. */
const LEASE_KEY = 'reconcile'
/** Items per page asked of sources-api and RHSM. */
const PAGE_SIZE = 100
/** Orgs swept at once. */
const ORGS_AT_ONCE = 8

/**
 * Reconciliation runs (src/reconcile): started by operators, or every RECONCILE_INTERVAL seconds as
 * a dry run whose counts become metrics. Registered before the pipeline so that, at shutdown, its
 * run stops before the pipeline closes the upstream connections the run reads through.
 */
async function reconcile (app: FastifyInstance): Promise<void> {
  const { config } = app
  const leases = app.store.leases(`${hostname()}/${process.pid}/reconcile-${randomUUID().slice(0, 8)}`, config.LEASE_MS)
  const stopping = new AbortController()
  let running: Promise<void> | null = null
  const staleMs = Math.max(2 * config.LEASE_MS, 120_000)

  async function start (dryRun: boolean, scheduled = false): Promise<StartResult> {
    const upstreams = app.upstreams
    if (upstreams === null) return { ok: false, reason: 'unconfigured' }
    if (running !== null || stopping.signal.aborted || !(await leases.take([LEASE_KEY])).has(LEASE_KEY)) return { ok: false, reason: 'busy' }
    if (scheduled) {
      // Every replica's timer fires: the first to take the lease runs, the others find its run recent.
      const last = await app.store.reconcile.lastScheduledStart()
      if (last !== null && Date.now() - last.getTime() < config.RECONCILE_INTERVAL! * 1000 * 0.9) {
        await leases.releaseAll()
        return { ok: false, reason: 'busy' }
      }
    }
    const id = randomUUID()
    await app.store.reconcile.create({ id, dryRun, scheduled, owner: leases.owner })
    app.log.info({ runId: id, dryRun, scheduled }, 'reconciliation started')
    // Renewed on a timer too: an org of thousands of sources may take longer than LEASE_MS between progress writes.
    const renew = setInterval(() => { leases.take([LEASE_KEY]).catch(() => {}) }, config.LEASE_MS / 3).unref()
    // Its listings are operators' bulk work: at a binding rate budget, they wait behind the events' calls.
    running = withCallPriority(LANES.bulk, async () => await runReconcile(id, dryRun, {
      ...upstreams,
      store: app.store.reconcile,
      inbox: app.store.inbox,
      log: app.log,
      pageSize: PAGE_SIZE,
      concurrency: ORGS_AT_ONCE,
      compareStatus: config.statusSink !== 'none',
      signal: stopping.signal,
      keepLease: async () => (await leases.take([LEASE_KEY])).has(LEASE_KEY),
      pollMs: 1000
    })).finally(async () => {
      clearInterval(renew)
      running = null
      await leases.releaseAll().catch((err: Error) => app.log.warn({ err }, 'releasing the reconciliation lease failed; it expires on its own'))
    })
    return { ok: true, id }
  }

  app.decorate('reconcile', { start: async (dryRun: boolean) => await start(dryRun), staleMs })

  // Any replica exports the last dry run's counts: they are read from the database on each scrape.
  const registers = [app.metrics.registry]
  const last = (): ReturnType<typeof app.store.reconcile.lastDryRun> => app.store.reconcile.lastDryRun()
  // eslint-disable-next-line no-new
  new Gauge({
    name: 'cloudoreg_reconcile_drift',
    help: 'Drift found by the last reconciliation dry run (scheduled or not), by class',
    labelNames: ['class'],
    registers,
    async collect () {
      const run = await last()
      for (const c of DRIFT_CLASSES) this.set({ class: c }, run?.counts[c] ?? 0)
    }
  })
  // eslint-disable-next-line no-new
  new Gauge({
    name: 'cloudoreg_reconcile_last_run_timestamp_seconds',
    help: 'When the last reconciliation dry run finished (Unix seconds; 0: never)',
    registers,
    async collect () {
      const run = await last()
      this.set(run === null ? 0 : run.finishedAt.getTime() / 1000)
    }
  })

  let timer: NodeJS.Timeout | undefined
  const interval = config.RECONCILE_INTERVAL
  if (interval !== undefined) {
    const tick = async (): Promise<void> => {
      try {
        const started = await start(true, true)
        if (started.ok) await running
      } catch (err) {
        app.log.warn({ err }, 'the scheduled reconciliation could not start; it tries again next interval')
      }
      if (!stopping.signal.aborted) timer = setTimeout(() => { void tick() }, interval * 1000).unref()
    }
    app.addHook('onReady', async () => { timer = setTimeout(() => { void tick() }, interval * 1000).unref() })
  }

  app.addHook('preClose', async () => {
    clearTimeout(timer)
    stopping.abort()
    // The run checks for the stop between orgs; an org in flight ends within the upstream timeouts.
    if (running !== null) await Promise.race([running, sleep(config.SHUTDOWN_GRACE_MS)])
  })
}

export default fp(reconcile, { name: 'reconcile', dependencies: ['store', 'metrics'] })
