import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { eventually, freePort, pushNative } from './helpers/stack.js'

// src/server.ts as its own process, the way `npm start` runs it (here through tap's TypeScript loader).
interface Server { child: ChildProcess, output: () => string, exited: Promise<number | null> }

function startServer (env: Record<string, string>): Server {
  const child = spawn(process.execPath, ['--import', '@tapjs/typescript/import', 'src/server.ts'], {
    env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  child.stdout!.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr!.on('data', (d: Buffer) => { output += d.toString() })
  const exited = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
  return { child, output: () => output, exited }
}

async function ready (url: string): Promise<void> {
  await eventually(async () => {
    try {
      return (await fetch(`${url}/readyz`)).status === 200 ? true : undefined
    } catch {
      return undefined
    }
  }, 60_000, 'the server to be ready')
}

/** Running, not a zombie waiting for a reaper that this sandbox may not have. */
function alive (pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

t.test('a bad setting stops start-up with a message naming the variable', async t => {
  const server = startServer({ PORT: 'eighty', DATA_DIR: '/nonexistent' })
  t.equal(await server.exited, 1)
  t.match(server.output(), /Invalid configuration: PORT must be integer/)
})

t.test('production without upstream settings refuses to start', async t => {
  const server = startServer({ NODE_ENV: 'production' })
  t.equal(await server.exited, 1)
  t.match(server.output(), /NODE_ENV=production needs SOURCES_API_URL/)
})

t.test('survives SIGKILL of the Node process while its PostgreSQL keeps running', async t => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cloudoreg-proc-'))
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))
  const env = { DATA_DIR: dataDir, PORT: String(await freePort()), EMBEDDED_PG_PORT: String(await freePort()), HOST: '127.0.0.1' }
  const url = `http://127.0.0.1:${env.PORT}`

  const first = startServer(env)
  t.teardown(() => { first.child.kill('SIGKILL') })
  await ready(url)
  t.match(first.output(), /events will be stored but not processed until SOURCES_API_URL, SOURCES_PSK, RHSM_API_URL are configured/)
  t.equal((await pushNative(url, 'ApplicationAuthentication.create', { application_id: 42, authentication_id: 311 })).status, 202)

  first.child.kill('SIGKILL')
  await first.exited
  const pidFile = join(dataDir, 'pg', 'postmaster.pid')
  t.ok(existsSync(pidFile), 'PostgreSQL left its pid file')
  const orphan = Number(readFileSync(pidFile, 'utf8').split('\n')[0])
  t.ok(alive(orphan), 'and is still running')

  const second = startServer(env)
  t.teardown(() => { second.child.kill('SIGKILL') })
  await ready(url)
  t.match(second.output(), /embedded PostgreSQL left running by a previous process/)
  t.notOk(alive(orphan), 'the orphan was stopped')
  const metrics = await (await fetch(`${url}/metrics`)).text()
  t.match(metrics, /cloudoreg_inbox_pending 1\b/, 'the event accepted before the kill is still there')

  second.child.kill('SIGTERM')
  t.equal(await second.exited, 0, 'SIGTERM closes cleanly')
  t.notOk(existsSync(pidFile), 'and stops PostgreSQL')
})
