import { appendFileSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import { buildApp, type AppOptions } from '../../src/app.js'
import { loadConfig, type Config } from '../../src/config.js'
import { startFakeRhsm, type FakeRhsm } from './fake-rhsm.js'
import { startFakeSources, type FakeSources } from './fake-sources.js'
import { startFakeSts, type FakeSts } from './fake-sts.js'
import { collectTopic, startMockKafka, type MockKafka, type TopicCollector } from './kafka.js'
import { readFixture } from './fixtures.js'
import { recordEnvSecrets, recordSecrets, serverLogPath } from './secrets.js'

// The service's own AWS identity, found by the SDK's default chain as in production.
process.env.AWS_ACCESS_KEY_ID = 'AKIDCLOUDOREGTEST'
process.env.AWS_SECRET_ACCESS_KEY = 'cloudoreg-test-secret-key'
delete process.env.AWS_PROFILE

export const STATUS_TOPIC = 'platform.sources.status'
export const PSK = 'sources-psk-secret-7f3a'
export const identities = readFixture('identities.json')
export const ORG = '7654321'
export const ACCOUNT = '1234567'
/**
 * Tests share two cores with each other (and, on a developer's machine, with everything else): a
 * one-second stall of the event loop is common there and would shed pushes that a test expects to
 * be stored. Load shedding itself is tested through MAX_BACKLOG and the heap threshold.
 */
export const TEST_SHEDDING = { MAX_EVENT_LOOP_DELAY_MS: '10000' }
/** Upstream rate budgets too high to bind: only the tests of the budgets themselves set real ones. */
export const TEST_RATES = { STS_MAX_RPS: '100000', RHSM_MAX_RPS: '100000', SOURCES_MAX_RPS: '100000' }
recordSecrets([PSK, process.env.AWS_SECRET_ACCESS_KEY, ...Object.values(identities.base64 as Record<string, string>)])

/** PostgreSQL refuses port 0, so ask the kernel for a free one first. */
export async function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

export interface Stack {
  app: FastifyInstance
  url: string
  config: Config
  sources: FakeSources
  rhsm: FakeRhsm
  sts: FakeSts
  kafka?: MockKafka
  status?: TopicCollector
  /** Every log line the service wrote, as text. */
  logs: string[]
  /** Closes the app (gracefully) and builds a new one on the same data. */
  restart: (env?: Record<string, string>) => Promise<void>
  close: () => Promise<void>
}

export interface StackOptions {
  kafka?: boolean
  env?: Record<string, string>
  /** Handed to buildApp: tracing on, spans to these processors (an in-memory exporter's). */
  spanProcessors?: AppOptions['spanProcessors']
}

interface Teardown { teardown: (fn: () => Promise<void> | void) => void }

/** The real server on a real port with embedded PostgreSQL, fake upstreams over HTTP, and optionally the mock Kafka cluster. */
export async function startStack (t: Teardown, opts: StackOptions = {}): Promise<Stack> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cloudoreg-test-'))
  const [sources, rhsm, sts, pgPort] = await Promise.all([startFakeSources({ psk: PSK }), startFakeRhsm(), startFakeSts(), freePort()])
  const kafka = opts.kafka ? await startMockKafka() : undefined
  const logs: string[] = []
  const logFile = serverLogPath()
  const logStream = new Writable({
    write (chunk, _encoding, done) {
      logs.push(chunk.toString())
      appendFileSync(logFile, chunk)
      if (process.env.CLOUDOREG_TEST_LOGS) process.stderr.write(chunk)
      done()
    }
  })
  const baseEnv: Record<string, string> = {
    NODE_ENV: 'test',
    LOG_LEVEL: 'info',
    ...TEST_SHEDDING,
    ...TEST_RATES,
    DATA_DIR: dataDir,
    EMBEDDED_PG_PORT: String(pgPort),
    SOURCES_API_URL: sources.url,
    SOURCES_PSK: PSK,
    RHSM_API_URL: rhsm.url,
    AWS_STS_ENDPOINT: sts.url,
    UPSTREAM_TIMEOUT_MS: '2000',
    RETRY_BASE_DELAY_MS: '50',
    RETRY_MAX_DELAY_MS: '500',
    ...(kafka ? { KAFKA_BROKERS: kafka.brokers.join(',') } : { STATUS_SINK: 'http' }),
    ...opts.env
  }

  const stack = { url: '', sources, rhsm, sts, kafka, logs } as Stack
  async function boot (env: Record<string, string>): Promise<void> {
    recordEnvSecrets(env)
    stack.config = loadConfig(env)
    stack.app = await buildApp({ config: stack.config, logStream, spanProcessors: opts.spanProcessors })
    await stack.app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = stack.app.server.address() as { port: number }
    stack.url = `http://127.0.0.1:${port}`
  }
  let closed = false
  stack.restart = async (env = {}) => {
    await stack.app.close()
    await boot({ ...baseEnv, ...env })
  }
  stack.close = async () => {
    if (closed) return
    closed = true
    await stack.app?.close()
    await stack.status?.stop()
    await kafka?.stop()
    await Promise.all([sources.close(), rhsm.close(), sts.close()])
    rmSync(dataDir, { recursive: true, force: true })
  }
  // Registered before booting, so that a failed boot does not leave the fakes keeping the test alive.
  t.teardown(stack.close)
  await boot(baseEnv)
  if (kafka) stack.status = await collectTopic(kafka.brokers, STATUS_TOPIC)
  return stack
}

export function fixtureHeaders (fixture: { kafka_headers: Record<string, string> }): Record<string, string> {
  return { 'content-type': 'application/json', ...fixture.kafka_headers }
}

/** Pushes one sources-native event the way a bridge would. */
/** One sources-native push, resent while it is shed with 503, as a bridge does. */
export async function pushNative (url: string, eventType: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return await untilNot503(() => fetch(`${url}/internal/v1/events`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      event_type: eventType,
      'x-rh-sources-org-id': ORG,
      'x-rh-sources-account-number': ACCOUNT,
      'x-rh-identity': identities.base64.system_7654321,
      ...headers
    },
    body: JSON.stringify(body)
  }))
}

/**
 * Sends a request again while it answers 503 (load shedding on a busy machine), as a bridge
 * or a client honouring Retry-After would; anything else is the answer.
 */
export async function untilNot503 (send: () => Promise<Response>, attempts = 100): Promise<Response> {
  for (let i = 1; ; i++) {
    const res = await send()
    if (res.status !== 503 || i >= attempts) return res
    await res.arrayBuffer()
    await new Promise(resolve => setTimeout(resolve, 200))
  }
}

export async function getJson (url: string, identity: string = identities.base64.user_7654321): Promise<{ status: number, body: any }> {
  const res = await fetch(url, { headers: { 'x-rh-identity': identity } })
  return { status: res.status, body: await res.json() }
}

/** Polls until `check` returns a value other than undefined. */
export async function eventually<T> (check: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

/** The inbox state of every stored event, for asserting that work ended. */
export async function inboxStates (stack: Stack): Promise<Array<{ id: number, event_type: string, state: string, outcome: string | null, attempts: number }>> {
  const { rows } = await stack.app.store.pool.query('select id::int, event_type, state, outcome, attempts from inbox order by id')
  return rows
}

/**
 * Waits for `count` decided statuses to leave the outbox, each sent or superseded, oldest first. The relay sends only
 * an application's latest unsent status (DESIGN.md, status outbox): a status decided while an older one of its
 * application is still unsent supersedes it, so a burst of events can yield fewer PATCHes than statuses.
 */
export async function outboxSettled (stack: Stack, count: number): Promise<Array<{ status: string, sent: boolean, superseded: boolean }>> {
  return eventually(async () => {
    const { rows } = await stack.app.store.pool.query<{ status: string, sent: boolean, superseded: boolean }>(
      'select status, sent_at is not null as sent, superseded from status_outbox order by id')
    return rows.length === count && rows.every(r => r.sent || r.superseded) ? rows : undefined
  }, 20_000, `${count} statuses decided, each sent or superseded`)
}

/**
 * The app with a real embedded PostgreSQL but no upstreams: events are stored and wait. For store and HTTP-only tests
 * (fastify.inject). With `logs`, every log line is also kept there (set LOG_LEVEL in `env` to see any).
 */
export async function startBareApp (t: Teardown, env: Record<string, string> = {}, logs?: string[]): Promise<FastifyInstance> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cloudoreg-bare-'))
  recordEnvSecrets(env)
  const logFile = serverLogPath()
  const app = await buildApp({
    config: loadConfig({ DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(await freePort()), LOG_LEVEL: 'silent', ...TEST_SHEDDING, ...TEST_RATES, ...env }),
    logStream: new Writable({
      write (chunk, _encoding, done) {
        logs?.push(chunk.toString())
        appendFileSync(logFile, chunk)
        done()
      }
    })
  })
  t.teardown(async () => {
    await app.close()
    rmSync(dataDir, { recursive: true, force: true })
  })
  await app.ready()
  return app
}

/** One ApplicationAuthentication.create as a Strimzi-bridge record (header values base64), for record batches. */
export function createRecord (offset: number, applicationId: number, authenticationId: number): Record<string, unknown> {
  return {
    topic: 'platform.sources.event-stream',
    partition: 0,
    offset,
    value: { application_id: applicationId, authentication_id: authenticationId },
    headers: [
      { key: 'event_type', value: Buffer.from('ApplicationAuthentication.create').toString('base64') },
      { key: 'x-rh-sources-org-id', value: Buffer.from(ORG).toString('base64') }
    ]
  }
}

/**
 * fastify.inject, sent again (up to 50 times, 200 ms apart) while load shedding answers 503 "overloaded" or
 * "memory", as a bridge would: on a busy machine that 503 says nothing about the request itself. `onShed` counts them.
 */
export async function injectPastShedding (app: FastifyInstance, options: InjectOptions, onShed: () => void = () => {}): Promise<LightMyRequestResponse> {
  for (let attempt = 0; ; attempt++) {
    const res = await app.inject(options)
    if (res.statusCode !== 503 || !/overloaded|memory/.test(res.body) || attempt === 50) return res
    onShed()
    await new Promise(resolve => setTimeout(resolve, 200))
  }
}
