import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { CHECK_EVENT, RECONCILE_EVENT } from './events/event.js'
import type { StoreStats } from './store/stats.js'
import { BREAKER_STATE_VALUE, type GateStats } from './upstream/breaker.js'
import type { UpstreamTarget } from './upstream/errors.js'

export interface Metrics {
  registry: Registry
  eventsReceived: (type: string) => void
  eventEnded: (type: string, outcome: 'done' | 'ignored' | 'dead', seconds: number) => void
  eventAttemptFailed: (type: string) => void
  upstreamCall: (target: UpstreamTarget, outcome: string, seconds: number) => void
  misconfigured: (target: UpstreamTarget) => void
  setQueued: (events: number, queues: number) => void
  /** Where the upstream gates' metrics come from (the pipeline's gates, once built). */
  watchGates: (stats: () => GateStats[]) => void
}

/**
 * The event types a metric may name: those sources-api emits and cloudoreg's own. Anything else
 * counts as `other`, since a label per pushed value would let a sender grow every scrape without
 * bound (20,000 made-up types once ran the process out of memory on the next scrape).
 */
export const KNOWN_EVENT_TYPES: ReadonlySet<string> = new Set([
  'Source.create', 'Source.update', 'Source.destroy', 'Source.pause', 'Source.unpause',
  'Application.create', 'Application.update', 'Application.destroy', 'Application.pause', 'Application.unpause',
  'Authentication.create', 'Authentication.update', 'Authentication.destroy',
  'ApplicationAuthentication.create', 'ApplicationAuthentication.update', 'ApplicationAuthentication.destroy',
  'Endpoint.create', 'Endpoint.update', 'Endpoint.destroy',
  'RhcConnection.create', 'RhcConnection.update', 'RhcConnection.destroy',
  'Records.update', CHECK_EVENT, RECONCILE_EVENT
])

export function typeLabel (type: string): string {
  return KNOWN_EVENT_TYPES.has(type) ? type : 'other'
}

/** One registry per app instance, so that tests can run several apps in one process. */
export function createMetrics (stats: Pick<StoreStats, 'inbox' | 'outbox' | 'parked' | 'deadLetters' | 'leases'>): Metrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const received = new Counter({ name: 'cloudoreg_events_received_total', help: 'Events stored in the inbox, by type', labelNames: ['type'], registers: [registry] })
  const processed = new Counter({ name: 'cloudoreg_events_processed_total', help: 'Events that ended, by type and outcome (done, ignored, dead)', labelNames: ['type', 'outcome'], registers: [registry] })
  const failed = new Counter({ name: 'cloudoreg_events_failed_total', help: 'Failed processing attempts (each is retried until attempts run out), by type', labelNames: ['type'], registers: [registry] })
  const duration = new Histogram({ name: 'cloudoreg_event_processing_seconds', help: 'From the first attempt to the end of an event', labelNames: ['type'], buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600], registers: [registry] })
  const upstream = new Histogram({ name: 'cloudoreg_upstream_call_seconds', help: 'Outbound calls by target and outcome', labelNames: ['target', 'outcome'], buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [registry] })
  const misconfigured = new Counter({ name: 'cloudoreg_misconfiguration_total', help: 'Upstreams refusing our own credentials (401/403): an operator must act', labelNames: ['target'], registers: [registry] })
  const queued = new Gauge({ name: 'cloudoreg_queue_events', help: 'Events loaded into per-source queues and not yet ended', registers: [registry] })
  const queues = new Gauge({ name: 'cloudoreg_queue_sources', help: 'Per-source queues alive', registers: [registry] })

  const fromStats = <T, K extends keyof T>(name: string, help: string, stats: () => Promise<T>, field: K): void => {
    new Gauge({ name, help, registers: [registry], async collect () { this.set(Number((await stats())[field])) } }) // eslint-disable-line no-new
  }
  const inboxStats = stats.inbox
  const outboxStats = stats.outbox
  const parkedStats = stats.parked
  fromStats('cloudoreg_inbox_pending', 'Events in the inbox not yet ended', inboxStats, 'n')
  fromStats('cloudoreg_inbox_oldest_pending_age_seconds', 'Age of the oldest event not yet ended', inboxStats, 'age')
  fromStats('cloudoreg_outbox_unsent', 'Status messages not yet sent', outboxStats, 'n')
  fromStats('cloudoreg_outbox_oldest_unsent_age_seconds', 'Age of the oldest status message not yet sent', outboxStats, 'age')
  fromStats('cloudoreg_outbox_parked', 'Status messages parked as undeliverable, waiting for an operator', parkedStats, 'n')
  // What an SRE is paged on (deploy/prometheusrule.yaml): work due that nobody takes, dead letters, replicas holding leases.
  fromStats('cloudoreg_inbox_oldest_due_age_seconds', 'How long the longest-due pending event has waited for an attempt (0: none due); retries waiting for their backoff do not count', inboxStats, 'due')
  fromStats('cloudoreg_dead_letters', 'Dead letters (events that ran out of attempts) not replayed yet', stats.deadLetters, 'n')
  fromStats('cloudoreg_leases', 'Per-source leases held by any replica (live)', stats.leases, 'n')
  fromStats('cloudoreg_lease_holders', 'Replicas holding at least one live lease, as the database says (every replica reports the same value)', stats.leases, 'holders')

  // The gates are built by the pipeline, after the metrics; read at each scrape.
  let gateStats: () => GateStats[] = () => []
  const fromGates = (name: string, help: string, Metric: typeof Gauge | typeof Counter, value: (g: GateStats) => number): void => {
    new Metric({ // eslint-disable-line no-new
      name,
      help,
      labelNames: ['target'],
      registers: [registry],
      collect () {
        this.reset()
        for (const g of gateStats()) {
          if (this instanceof Gauge) this.set({ target: g.target }, value(g))
          else this.inc({ target: g.target }, value(g))
        }
      }
    })
  }
  fromGates('cloudoreg_upstream_breaker_state', 'Circuit breaker of each upstream target: 0 closed, 1 half-open, 2 open', Gauge, g => BREAKER_STATE_VALUE[g.state])
  fromGates('cloudoreg_upstream_waiting_events', 'Events waiting for an upstream target to answer again (attempts not spent)', Gauge, g => g.waiting)
  fromGates('cloudoreg_upstream_breaker_open_seconds_total', 'Time each upstream target\'s breaker has spent open or half-open since start', Counter, g => g.openSeconds)

  return {
    registry,
    watchGates (stats) {
      gateStats = stats
    },
    eventsReceived: type => received.inc({ type: typeLabel(type) }),
    eventEnded (type, outcome, seconds) {
      processed.inc({ type: typeLabel(type), outcome })
      duration.observe({ type: typeLabel(type) }, seconds)
    },
    eventAttemptFailed: type => failed.inc({ type: typeLabel(type) }),
    upstreamCall: (target, outcome, seconds) => upstream.observe({ target, outcome }, seconds),
    misconfigured: target => misconfigured.inc({ target }),
    setQueued (events, n) {
      queued.set(events)
      queues.set(n)
    }
  }
}
