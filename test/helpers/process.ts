import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, readFileSync } from 'node:fs'
import { recordEnvSecrets, serverLogPath } from './secrets.js'
import { eventually } from './stack.js'

/** src/server.ts as its own process, the way `npm start` runs it (here through tap's TypeScript loader). */
export interface ServerProcess { child: ChildProcess, output: () => string, exited: Promise<number | null> }

export function startServer (env: Record<string, string>): ServerProcess {
  const child = spawn(process.execPath, ['--import', '@tapjs/typescript/import', 'src/server.ts'], {
    env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  recordEnvSecrets(env)
  const log = createWriteStream(serverLogPath())
  let output = ''
  child.stdout!.on('data', (d: Buffer) => { output += d.toString(); log.write(d) })
  child.stderr!.on('data', (d: Buffer) => { output += d.toString(); log.write(d) })
  child.on('exit', () => log.end())
  const exited = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
  return { child, output: () => output, exited }
}

export async function ready (url: string): Promise<void> {
  await eventually(async () => {
    try {
      return (await fetch(`${url}/readyz`)).status === 200 ? true : undefined
    } catch {
      return undefined
    }
  }, 60_000, 'the server to be ready')
}

/** Running, not a zombie waiting for a reaper that this sandbox may not have. */
export function alive (pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}
