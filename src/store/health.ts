import { access } from 'node:fs/promises'
import { join } from 'node:path'
import type pg from 'pg'
import type { Logger } from '../log.js'
import { ping } from './stats.js'

/**
 * Whether the database is there, checked on a timer so that probes read a state instead of
 * queueing queries behind the work. A loss is logged once, in words, and so is the recovery;
 * the loops that meet the same failure stay quiet meanwhile (see `down`).
 */
export interface DatabaseHealth {
  /** Undefined while the database answers; else what is wrong and since when. */
  problem: () => { detail: string, since: string } | undefined
  down: () => boolean
  /** Checks now, then says whether the database is lost. */
  checkDown: () => Promise<boolean>
  stop: () => void
}

export interface HealthOptions {
  pool: pg.Pool
  /** The embedded server's data directory: its disappearance is a loss even while the server still answers. */
  dataDir?: string
  intervalMs: number
  log: Logger
}

export function watchDatabase ({ pool, dataDir, intervalMs, log }: HealthOptions): DatabaseHealth {
  let problem: { detail: string, since: string } | undefined
  let checking: Promise<void> | undefined

  async function probe (): Promise<string | undefined> {
    if (dataDir !== undefined) {
      const gone = await access(join(dataDir, 'pg', 'PG_VERSION')).then(() => false, () => true)
      if (gone) return `the data directory ${dataDir} is gone; restore it or restart cloudoreg on a new one`
    }
    try {
      await ping(pool, 2000)
      return undefined
    } catch (err) {
      return `the database does not answer: ${(err as Error).message}`
    }
  }

  async function check (): Promise<void> {
    const detail = await probe()
    if (detail === undefined && problem !== undefined) {
      log.info({ downSince: problem.since }, 'the database answers again')
      problem = undefined
    } else if (detail !== undefined && problem?.detail !== detail) {
      problem = { detail, since: problem?.since ?? new Date().toISOString() }
      log.error(`database lost: ${detail}; /healthz reports it, and errors from the same cause are not logged until it is back`)
    }
  }

  const timer = setInterval(() => {
    checking ??= check().finally(() => { checking = undefined })
  }, intervalMs).unref()

  return {
    problem: () => problem,
    down: () => problem !== undefined,
    // Its own check, not one that may have started before the failure that asks.
    checkDown: async () => {
      await check()
      return problem !== undefined
    },
    stop: () => clearInterval(timer)
  }
}
