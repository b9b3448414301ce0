import { readFileSync } from 'node:fs'
import { open, readFile, unlink } from 'node:fs/promises'
import { join } from 'node:path'

/**
 * One cloudoreg per data directory. The embedded PostgreSQL alone cannot tell a server left behind
 * by a SIGKILLed cloudoreg (to be stopped and restarted) from the live server of another running
 * cloudoreg (to be left alone): this lock file, naming the owner's PID and start time, can.
 */
export class DataDirInUseError extends Error {
  code = 'CLOUDOREG_DATA_DIR_IN_USE'
  constructor (readonly dataDir: string, readonly pid: number) {
    super(`DATA_DIR ${dataDir} is in use by another cloudoreg (PID ${pid}); stop that one, or set DATA_DIR to another directory (and EMBEDDED_PG_PORT to another port)`)
  }
}

export interface DataDirLock {
  /** Whether a dead owner left the lock behind (its PostgreSQL may still be running). */
  stale: boolean
  release: () => Promise<void>
}

interface Owner { pid: number, started?: string }

const LOCK_FILE = 'cloudoreg.lock'

/** The kernel's start time of a process (clock ticks since boot), which tells a reused PID apart. */
function startTime (pid: number): string | undefined {
  try {
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return fields[0] === 'Z' ? undefined : fields[19]
  } catch {
    return undefined
  }
}

/** A process that exists and is not a zombie (one killed but not yet reaped holds nothing). */
export function processRunning (pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  return process.platform !== 'linux' || startTime(pid) !== undefined
}

function alive (owner: Owner): boolean {
  if (owner.pid === process.pid) return false // a container restarted with the same PID as the dead owner
  // On Linux, a zombie or another process that got the PID since is not the owner.
  if (!processRunning(owner.pid)) return false
  const started = startTime(owner.pid)
  return started === undefined || owner.started === undefined || owner.started === started
}

async function readOwner (path: string): Promise<Owner | undefined> {
  try {
    const owner = JSON.parse(await readFile(path, 'utf8')) as Owner
    return Number.isInteger(owner.pid) && owner.pid > 0 ? owner : undefined
  } catch {
    return undefined
  }
}

/** Takes the data directory for this process, or throws DataDirInUseError naming the live owner. */
export async function lockDataDir (dataDir: string): Promise<DataDirLock> {
  const path = join(dataDir, LOCK_FILE)
  const me: Owner = { pid: process.pid, started: startTime(process.pid) }
  let stale = false
  for (let tries = 0; ; tries++) {
    try {
      const file = await open(path, 'wx', 0o644)
      await file.writeFile(JSON.stringify(me) + '\n')
      await file.close()
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || tries > 0) throw err
    }
    const owner = await readOwner(path)
    if (owner !== undefined && alive(owner)) throw new DataDirInUseError(dataDir, owner.pid)
    // The owner died without releasing: its lock, and perhaps its PostgreSQL, are leftovers.
    stale = true
    await unlink(path).catch(() => {})
  }
  return {
    stale,
    async release () {
      const owner = await readOwner(path)
      if (owner?.pid === process.pid) await unlink(path).catch(() => {})
    }
  }
}
