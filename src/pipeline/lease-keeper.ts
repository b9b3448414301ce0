import type { Logger } from '../log.js'
import type { Leases } from '../store/leases.js'

export interface LeaseKeeperOptions {
  leases: Leases
  /** How long a lease lasts unrenewed: a dead replica's sources wait at most this long. */
  leaseMs: number
  /** The keys this replica has work on right now: renewed while present, released once gone. */
  active: ReadonlyMap<string, unknown>
  log: Logger
  /** Checks the database after a failure: while it is lost (the health monitor said so once), failures here are not logged again. */
  databaseDown?: () => Promise<boolean>
}

export interface LeaseKeeper {
  /** This replica, as the leases name it. */
  owner: string
  /** Renews the active keys' leases every third of a lease. */
  start: () => void
  stop: () => void
  /**
   * Runs `fn` with no renewal in between: a renewal releases keys with no work here, so it must
   * not come between taking a key and queueing its events.
   */
  exclusive: <T>(fn: () => Promise<T>) => Promise<T>
  /** Whether the key's lease was lost: its events still queued here are dropped, not run. */
  isLost: (key: string) => boolean
  /**
   * The key has no work left here: it may be taken again. Until then a lost key stays lost, so that
   * no later event of it overtakes a dropped one.
   */
  forget: (key: string) => void
  /** Gives up every lease of this replica. */
  releaseAll: () => Promise<void>
}

/**
 * Keeps the leases on the queue keys this replica runs. Replicas sharing a database share the work
 * by leasing queue keys: a key is run by one replica at a time, which renews its leases while it
 * has work on them; a dead replica's keys free up when their leases expire.
 */
export function createLeaseKeeper (o: LeaseKeeperOptions): LeaseKeeper {
  const lost = new Set<string>()
  let lastRenewal = Date.now()
  let renewer: NodeJS.Timeout | undefined
  // Reading, taking and renewing leases run one at a time, so a renewal never releases a key a read just took.
  let leaseWork: Promise<unknown> = Promise.resolve()

  function exclusive<T> (fn: () => Promise<T>): Promise<T> {
    const next = leaseWork.then(fn)
    leaseWork = next.catch(() => {})
    return next
  }

  function lose (keys: Iterable<string>): void {
    for (const key of keys) {
      lost.add(key)
      o.log.warn({ queueKey: key }, 'lease lost; another replica takes over this source')
    }
  }

  async function renew (): Promise<void> {
    await exclusive(async () => {
      const active = [...o.active.keys()]
      try {
        const kept = await o.leases.renew(active)
        lastRenewal = Date.now()
        // Not a key whose queue emptied meanwhile: nothing would forget it, and it could never be taken again.
        lose(active.filter(key => !kept.has(key) && o.active.has(key)))
      } catch (err) {
        // Past the lease, another replica may run these keys: stop starting their events here.
        if (Date.now() - lastRenewal >= o.leaseMs) lose(active.filter(key => o.active.has(key)))
        if (await o.databaseDown?.() !== true) o.log.error({ err }, 'renewing leases failed')
      }
    })
  }

  return {
    owner: o.leases.owner,
    start () {
      lastRenewal = Date.now()
      renewer = setInterval(() => { void renew() }, Math.max(100, Math.floor(o.leaseMs / 3))).unref()
    },
    stop () {
      clearInterval(renewer)
    },
    exclusive,
    isLost: key => lost.has(key),
    forget: key => { lost.delete(key) },
    releaseAll: () => exclusive(() => o.leases.releaseAll())
  }
}
