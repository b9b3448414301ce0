import pg from 'pg'
import { backoffDelay, type Backoff } from '../backoff.js'
import type { Logger } from '../log.js'

/** The channel on which replicas tell each other that an upstream asked to wait. */
const CHANNEL = 'cloudoreg_upstream_hold'

/** A lost listening connection is opened again at this pace, spread over the replicas that lost it together. */
const LISTEN_BACKOFF: Backoff = { firstMs: 500, maxMs: 30_000, jitter: 0.5 }

/** `<gate key> <until, epoch ms>`: a key as the gates name them (`rhsm`, `sts:eu-west-1`), a time in whole ms. */
const PAYLOAD = /^([a-z0-9:-]{1,64}) ([0-9]{1,16})$/

export interface Holds {
  /** Tells every replica (this one too) that the upstream behind gate `target` takes no calls until `until`. */
  publish: (target: string, until: number) => Promise<void>
  /**
   * Hears the holds of every replica on one connection of its own, opened again (with a backoff) when it
   * drops; holds published while it was down are not heard. `started` settles once the first attempt
   * to listen has (it never rejects). Stops at `close`.
   */
  listen: (onHold: (target: string, until: number) => void, log: Logger) => { started: Promise<void>, close: () => Promise<void> }
}

/** What a notification says, if it says it in the expected form; anyone who can connect may NOTIFY. */
export function parseHold (payload: string | undefined): { target: string, until: number } | undefined {
  const m = PAYLOAD.exec(payload ?? '')
  if (m === null) return undefined
  return { target: m[1], until: Number(m[2]) }
}

export function createHolds (pool: pg.Pool): Holds {
  return {
    async publish (target, until) {
      await pool.query('select pg_notify($1, $2)', [CHANNEL, `${target} ${Math.round(until)}`])
    },
    listen (onHold, log) {
      let client: pg.Client | undefined
      let closed = false
      let failures = 0
      let timer: NodeJS.Timeout | undefined

      function lost (c: pg.Client, err?: Error): void {
        if (c !== client) return
        client = undefined
        c.end().catch(() => {})
        if (closed) return
        failures++
        const waitMs = backoffDelay(LISTEN_BACKOFF, failures)
        // The error can carry connection settings: only its message.
        log.warn({ error: err?.message, waitMs }, 'lost the connection that hears other replicas\' upstream holds; opening it again')
        timer = setTimeout(() => { void connect() }, waitMs).unref()
      }

      async function connect (): Promise<void> {
        const c = new pg.Client(pool.options)
        client = c
        c.on('error', err => lost(c, err))
        c.on('end', () => lost(c))
        c.on('notification', msg => {
          // This connection listens on one channel only.
          const hold = parseHold(msg.payload)
          if (hold !== undefined) onHold(hold.target, hold.until)
        })
        try {
          await c.connect()
          await c.query(`listen ${CHANNEL}`)
          failures = 0
        } catch (err) {
          lost(c, err as Error)
        }
      }

      return {
        started: connect(),
        async close () {
          closed = true
          clearTimeout(timer)
          const c = client
          client = undefined
          await c?.end().catch(() => {})
        }
      }
    }
  }
}
