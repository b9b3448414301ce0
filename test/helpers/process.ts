import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, readFileSync } from 'node:fs'
import { recordEnvSecrets, serverLogPath } from './secrets.js'
import { eventually, ORG, PSK, TEST_RATES, TEST_SHEDDING } from './stack.js'

/** A server started as its own process. */
export interface ServerProcess { child: ChildProcess, output: () => string, exited: Promise<number | null> }

/** The test-only entry that runs the service with fault hooks, and its arguments (see the file). */
export const withHooks = (...args: string[]): string[] => ['test/helpers/server-with-hooks.ts', ...args]

/**
 * The server as its own process, the way `npm start` runs it: the compiled build in dist/, which tap's
 * `before` step (test/before.mjs) brings up to date, and whose source maps carry its coverage back to
 * src/. Loading the service through a TypeScript loader instead costs about 4 s of CPU per process.
 * `entry`: the script and its arguments; `withHooks(...)` for a server with fault hooks, a TypeScript
 * entry, which goes through tap's loader.
 */
export function startServer (env: Record<string, string>, entry: string[] = ['dist/src/server.js']): ServerProcess {
  const typescript = entry[0].endsWith('.ts')
  const child = spawn(process.execPath, [...(typescript ? ['--import', '@tapjs/typescript/import'] : []), ...entry], {
    env: { ...process.env, ...(typescript ? { TS_NODE_TRANSPILE_ONLY: '1' } : {}), LOG_LEVEL: 'info', ...TEST_SHEDDING, ...TEST_RATES, ...env },
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
  }, 120_000, 'the server to be ready')
}

/** Running, not a zombie waiting for a reaper that this sandbox may not have. */
export function alive (pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

/** Points a server process at the upstream fakes, with timeouts and retries short enough for tests. */
export function upstreamEnv (fakes: { sources: { url: string }, sts: { url: string }, rhsm: { url: string } }): Record<string, string> {
  return {
    SOURCES_API_URL: fakes.sources.url,
    SOURCES_PSK: PSK,
    RHSM_API_URL: fakes.rhsm.url,
    AWS_STS_ENDPOINT: fakes.sts.url,
    UPSTREAM_TIMEOUT_MS: '2000',
    RETRY_BASE_DELAY_MS: '50',
    RETRY_MAX_DELAY_MS: '500',
    SHUTDOWN_GRACE_MS: '1000'
  }
}

/**
 * Like a bridge: sends one sources-native event until a server acknowledges it, to `urlOf(attempt)`;
 * the delivery id makes the resends duplicates. Resolves with how many sends failed.
 */
export async function pushUntilAcknowledged (urlOf: (attempt: number) => string, eventType: string, body: unknown, deliveryId: string, pauseMs: number): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await fetch(`${urlOf(attempt)}/internal/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', event_type: eventType, 'x-rh-sources-org-id': ORG, 'webhook-id': deliveryId },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(5000)
      })
      if (res.status === 202 || res.status === 200) return attempt
    } catch {}
    await new Promise(resolve => setTimeout(resolve, pauseMs))
  }
}

export interface CliRun { code: number | null, stdout: string, stderr: string }

/**
 * Runs the operator CLI as its own process: `bin` runs the real executable (bin/cloudoreg.mjs, which
 * compiles dist/ first when a source changed), else the compiled CLI directly (dist/ is kept up to date
 * by tap's `before` step).
 */
export async function runCli (args: string[], env: Record<string, string>, how: 'dist' | 'bin' = 'dist'): Promise<CliRun> {
  const entry = how === 'bin' ? ['bin/cloudoreg.mjs'] : ['dist/src/cli/cloudoreg.js']
  const child = spawn(process.execPath, [...entry, ...args], {
    env: { ...process.env, CLOUDOREG_URL: '', CLOUDOREG_TOKEN: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const code = await new Promise<number | null>(resolve => child.on('close', resolve))
  return { code, stdout, stderr }
}
