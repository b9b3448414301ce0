/**
 * Test helpers for Kafka: an in-process mock Kafka cluster (librdkafka's mock
 * cluster, run inside a `kcat` process) and a topic collector built on a
 * kafkajs consumer.
 *
 * The mock cluster:
 *   - `kcat -b localhost:1 -X test.mock.num.brokers=3 -d mock -t warmup -C`
 *     starts a 3-broker mock cluster and prints `bootstrap.servers=...` on
 *     stderr (the original `-b` is ignored).
 *   - Topics are auto-created (4 partitions) on the first Metadata request
 *     that names them. Admin CreateTopics and the idempotent producer do NOT
 *     work against it: the mock reports controller id 0, which is not one of
 *     its brokers (1..3), so kafkajs fails with
 *     "KafkaJSBrokerNotFound: Broker 0 not found in the cached metadata".
 *   - Consumer groups work; the first JoinGroup of a new group takes ~3 s
 *     (the mock's fixed initial rebalance delay; not configurable in
 *     librdkafka 2.0.2).
 *   - Each broker advertises its own port, so an outage is simulated with
 *     SIGSTOP/SIGCONT on the kcat process (pause()/resume()). While stopped,
 *     the kernel still accepts TCP connections into the listen backlog, so
 *     clients see hanging requests (timeouts), not refused connections.
 *   - With `-d mock` kcat logs every request on stderr: stderr must be drained
 *     for the whole life of the process, otherwise kcat blocks on a full pipe
 *     and the cluster stalls.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { randomUUID } from 'node:crypto'
import {
  Kafka,
  logLevel,
  Partitioners,
  type Consumer,
  type ConsumerConfig,
  type IHeaders,
  type KafkaConfig,
  type ProducerConfig,
} from 'kafkajs'

const KCAT = process.env.KCAT_BIN ?? '/usr/bin/kcat'
const SETPRIV = '/usr/bin/setpriv'
const STARTUP_TIMEOUT_MS = 10_000
const STDERR_TAIL_CHARS = 4_000

/**
 * kafkajs client settings (the `new Kafka({...})` part, minus `brokers` and
 * logging) that work reliably against the mock cluster and survive a 20 s
 * broker stall (SIGSTOP). The service should mirror these.
 */
export const kafkaClientDefaults = {
  /**
   * Time allowed for the TCP connect. Only matters for real network trouble:
   * a SIGSTOPped broker still completes the TCP handshake (kernel backlog) and
   * a dead one refuses at once. kafkajs' default (1000 ms) is fine on
   * loopback; 3000 ms avoids spurious "Connection timeout" on a loaded 2-core
   * CI machine or a real network.
   */
  connectionTimeout: 3_000,
  /**
   * How long a request may wait for its response. This is THE setting for
   * stalled brokers: while requestTimeout is longer than the stall, an
   * in-flight Produce (or the ApiVersions/Metadata of a connect) simply waits
   * and completes right after the broker resumes — no error, no duplicate.
   * When it is shorter, every timed-out Produce is retried on the same
   * socket and the broker later appends BOTH the timed-out and the retried
   * batch (observed: requestTimeout 5000 + 20 s stall = 3 duplicates).
   * Worse, if the ApiVersions request of the very first connect times out,
   * kafkajs keeps the half-initialised seed broker and every later send fails
   * with "Broker not connected" until producer.disconnect()+connect().
   * Keep it (kafkajs default) 30 s, i.e. above the longest stall to ride out.
   * Note kafkajs uses max(requestTimeout, per-request timeout), so ApiVersions
   * (per-request: connectionTimeout) also gets 30 s.
   */
  requestTimeout: 30_000,
  /** kafkajs 2.x default; stated so the behaviour above does not change. */
  enforceRequestTimeout: true,
  /**
   * kafkajs-internal retries (connect, metadata, produce), exponential
   * backoff 300 ms * 2^n (±20 %), capped per step at maxRetryTime. With a
   * refused connection (broker process down) 5 retries give up after ~8 s
   * (connect) to ~20 s (send on a producer whose broker died), so the CALLER
   * must retry on top anyway; more retries here only delay the error.
   * Set explicitly because kafkajs silently switches to very different
   * defaults (retries 15, maxRetryTime 1 s) when NODE_ENV=test.
   */
  retry: {
    initialRetryTime: 300,
    maxRetryTime: 30_000,
    multiplier: 2,
    factor: 0.2,
    retries: 5,
  },
} as const satisfies Omit<KafkaConfig, 'brokers'>

/** Producer settings (kafka.producer({...})) for the mock cluster and the service. */
export const kafkaProducerDefaults = {
  /**
   * Explicit partitioner: without it kafkajs 2.x logs the "KafkaJS v2.0.0
   * switched default partitioner" warning once per process (unless
   * KAFKAJS_NO_PARTITIONER_WARNING=1 is set). DefaultPartitioner = murmur2,
   * same key -> same partition as the Java client.
   */
  createPartitioner: Partitioners.DefaultPartitioner,
  /**
   * Topics are created on first use by the Metadata request; the mock does
   * not support CreateTopics. (kafkajs default is true; stated explicitly.)
   */
  allowAutoTopicCreation: true,
  /**
   * Must stay false against the mock (controller id 0 does not exist, see
   * file header). Hence delivery is at-least-once: consumers must dedupe.
   */
  idempotent: false,
} satisfies ProducerConfig

/** Consumer settings used by collectTopic (groupId is added per collector). */
export const kafkaConsumerDefaults = {
  allowAutoTopicCreation: true,
  /**
   * Fetch long-poll. kafkajs' default 5000 ms makes consumer.disconnect()
   * take up to 5 s (it waits for the in-flight fetch) and delays delivery;
   * 250 ms keeps tests fast.
   */
  maxWaitTimeInMs: 250,
  /**
   * The mock expires a member whose heartbeats stop for longer than
   * sessionTimeout, and a stalled cluster receives no heartbeats. With the
   * kafkajs default (30 s) a 40 s stall expires the collector ("The
   * coordinator is not aware of this member") and its rejoin then takes
   * ~29 s. 60 s lets a collector ride out stalls up to ~60 s without a
   * rebalance. rebalanceTimeout must be >= sessionTimeout.
   */
  sessionTimeout: 60_000,
  rebalanceTimeout: 60_000,
  heartbeatInterval: 3_000,
} satisfies Omit<ConsumerConfig, 'groupId'>

/** kafkajs log level for test clients: keep test output clean. */
export const kafkaTestLogLevel = logLevel.NOTHING

export interface MockKafka {
  /** `host:port` of every mock broker, usable as kafkajs `brokers`. */
  readonly brokers: string[]
  /** pid of the kcat process that hosts the cluster. */
  readonly pid: number
  /**
   * Stop the whole cluster (SIGSTOP): requests hang, TCP connects still succeed.
   * Resolves once every thread of kcat is really stopped: the kernel's group
   * stop is asynchronous and took up to ~4 ms here, long enough for a request
   * sent right after kill() to be answered. Always await it.
   */
  pause(): Promise<void>
  /** Continue the cluster (SIGCONT); resolves once its threads run again. */
  resume(): Promise<void>
  /** SIGCONT then SIGKILL; resolves once the process has exited. Idempotent. */
  stop(): Promise<void>
  /** Last few KB of kcat's stderr (debugging). */
  stderrTail(): string
}

/** Scheduler state letter of every thread of `pid` ('T' = stopped), or null without /proc. */
function threadStates (pid: number): string[] | null {
  try {
    return readdirSync(`/proc/${pid}/task`).map((tid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
        return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
      } catch {
        return '?' // thread exited meanwhile
      }
    })
  } catch {
    return null
  }
}

/** Poll until `done(states)` holds (or, without /proc, just wait a moment). */
async function waitForThreads (pid: number, what: string, done: (states: string[]) => boolean): Promise<void> {
  const deadline = Date.now() + 2_000
  for (;;) {
    const states = threadStates(pid)
    if (states === null) return new Promise((resolve) => setTimeout(resolve, 50))
    if (done(states)) return
    if (Date.now() > deadline) throw new Error(`mock kafka pid ${pid}: not ${what} after 2 s (threads: ${states.join('')})`)
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
}

const liveChildren = new Set<ChildProcess>()
let exitHandlerInstalled = false

function killAllSync (): void {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL') // also kills a stopped process
    } catch {
      // already gone
    }
  }
  liveChildren.clear()
}

function installExitHandler (): void {
  if (exitHandlerInstalled) return
  exitHandlerInstalled = true
  process.on('exit', killAllSync)
}

/**
 * Start a 3-broker librdkafka mock cluster inside a kcat process.
 * The process is SIGKILLed when this process exits ('exit' handler), and,
 * when util-linux's setpriv is present, also by the kernel if this process
 * dies from a signal (parent-death signal), so no kcat is ever left behind.
 */
export async function startMockKafka (): Promise<MockKafka> {
  if (!existsSync(KCAT)) {
    throw new Error(`startMockKafka: kcat is not at ${KCAT}: install it (apt-get install -y kcat; .ci/run does) or point KCAT_BIN at it`)
  }
  installExitHandler()
  const kcatArgs = ['-b', 'localhost:1', '-X', 'test.mock.num.brokers=3', '-d', 'mock', '-t', 'warmup', '-C']
  const [cmd, args] = existsSync(SETPRIV)
    ? [SETPRIV, ['--pdeathsig', 'KILL', '--', KCAT, ...kcatArgs]]
    : [KCAT, kcatArgs]
  // setpriv execs kcat, so child.pid is kcat's pid (signals reach kcat directly).
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] })
  liveChildren.add(child)

  let tail = ''
  let exited = false
  const exitedPromise = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true
      liveChildren.delete(child)
      resolve()
    })
  })

  const brokers = await new Promise<string[]>((resolve, reject) => {
    let settled = false
    const fail = (why: string): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      child.kill('SIGKILL')
      reject(new Error(`startMockKafka: ${why}\n--- kcat stderr (tail) ---\n${tail}`))
    }
    const timer = setTimeout(
      () => fail(`no "bootstrap.servers=" on kcat stderr within ${STARTUP_TIMEOUT_MS} ms`),
      STARTUP_TIMEOUT_MS
    )
    child.once('error', (err) => fail(`cannot spawn ${cmd}: ${err.message}`))
    child.once('exit', (code, signal) => fail(`kcat exited early (code ${code}, signal ${signal})`))
    child.stderr!.setEncoding('utf8')
    // Keep draining stderr for the life of the process (see file header).
    child.stderr!.on('data', (chunk: string) => {
      const seen = tail + chunk
      tail = seen.slice(-STDERR_TAIL_CHARS)
      if (settled) return
      // Search before trimming: under load one chunk can hold the line and more than the tail keeps.
      // Require the line end: a chunk may stop in the middle of the port list.
      const m = /bootstrap\.servers=(\S+)\s/.exec(seen)
      if (m) {
        settled = true
        clearTimeout(timer)
        resolve(m[1].split(','))
      }
    })
  })

  const pid = child.pid!
  const signal = (sig: NodeJS.Signals): void => {
    if (!exited) child.kill(sig)
  }
  return {
    brokers,
    pid,
    async pause () {
      signal('SIGSTOP')
      if (!exited) await waitForThreads(pid, 'stopped', (st) => st.every((c) => c === 'T' || c === 't' || c === '?'))
    },
    async resume () {
      signal('SIGCONT')
      if (!exited) await waitForThreads(pid, 'resumed', (st) => !st.some((c) => c === 'T'))
    },
    async stop () {
      signal('SIGCONT')
      signal('SIGKILL')
      await exitedPromise
    },
    stderrTail: () => tail,
  }
}

export interface CollectedMessage {
  key: string | null
  value: string
  /** Header values decoded as UTF-8; a repeated header's values are joined with ','. */
  headers: Record<string, string>
  partition: number
  offset: string
}

export interface TopicCollector {
  readonly topic: string
  readonly groupId: string
  /** Every message received so far, in arrival order (live array). */
  readonly messages: CollectedMessage[]
  /**
   * Resolves with a snapshot of all messages received so far as soon as
   * `predicate(messages)` is true (checked now and after every message).
   * Rejects after timeoutMs, saying how many messages arrived.
   */
  waitFor(
    predicate: (messages: readonly CollectedMessage[]) => boolean,
    timeoutMs?: number,
  ): Promise<CollectedMessage[]>
  /** Disconnect the consumer; pending waitFor calls are rejected. Idempotent. */
  stop(): Promise<void>
}

export interface CollectTopicOptions {
  /** Default: `collector-<topic>-<uuid>` (a fresh group, so it reads everything). */
  groupId?: string
  /** Default true. */
  fromBeginning?: boolean
  /**
   * Resolve only after the consumer has joined its group and got its
   * assignment (default true; ~3 s on the mock). With fromBeginning this is
   * not needed for correctness, but it makes later waitFor timeouts
   * predictable.
   */
  waitForJoin?: boolean
  /** Default 15000 ms. */
  joinTimeoutMs?: number
  /** Extra kafkajs client settings (merged over kafkaClientDefaults). */
  kafkaConfig?: Partial<Omit<KafkaConfig, 'brokers'>>
}

function headerToString (v: IHeaders[string]): string {
  if (v === undefined) return ''
  if (Array.isArray(v)) return v.map((x) => x.toString()).join(',')
  return v.toString()
}

function describe (messages: readonly CollectedMessage[]): string {
  const last = messages.slice(-5).map((m) => `${m.partition}@${m.offset} key=${m.key} value=${m.value.slice(0, 80)}`)
  return last.length ? `; last: [${last.join(' | ')}]` : ''
}

/** Consume `topic` with a fresh kafkajs consumer group and record every message. */
export async function collectTopic (
  brokers: string[],
  topic: string,
  opts: CollectTopicOptions = {}
): Promise<TopicCollector> {
  const groupId = opts.groupId ?? `collector-${topic}-${randomUUID()}`
  const kafka = new Kafka({
    ...kafkaClientDefaults,
    clientId: `collector-${topic}`,
    logLevel: kafkaTestLogLevel,
    ...opts.kafkaConfig,
    brokers,
  })
  const consumer: Consumer = kafka.consumer({ ...kafkaConsumerDefaults, groupId })
  const messages: CollectedMessage[] = []
  type Waiter = { check: () => boolean }
  const waiters = new Set<Waiter>()
  let stopped = false
  const waiterRejects = new Set<(e: Error) => void>()

  const notify = (): void => {
    for (const w of [...waiters]) w.check()
  }

  let joined!: () => void
  const joinedPromise = new Promise<void>((resolve) => (joined = resolve))
  const removeJoinListener = consumer.on(consumer.events.GROUP_JOIN, () => joined())

  await consumer.connect()
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: opts.fromBeginning ?? true })
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        const headers: Record<string, string> = {}
        for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = headerToString(v)
        messages.push({
          key: message.key === null ? null : message.key.toString(),
          value: message.value === null ? '' : message.value.toString(),
          headers,
          partition,
          offset: message.offset,
        })
        notify()
      },
    })
    if (opts.waitForJoin ?? true) {
      const joinTimeoutMs = opts.joinTimeoutMs ?? 15_000
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        joinedPromise,
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(
            () => reject(new Error(`collectTopic(${topic}): consumer did not join group ${groupId} within ${joinTimeoutMs} ms`)),
            joinTimeoutMs
          )
        }),
      ]).finally(() => clearTimeout(timer))
    }
  } catch (err) {
    removeJoinListener()
    await consumer.disconnect().catch(() => undefined)
    throw err
  }

  return {
    topic,
    groupId,
    messages,
    waitFor (predicate, timeoutMs = 15_000) {
      if (stopped) return Promise.reject(new Error(`collectTopic(${topic}): collector is stopped`))
      return new Promise<CollectedMessage[]>((resolve, reject) => {
        const started = Date.now()
        const waiter: Waiter = {
          check: () => {
            if (!predicate(messages)) return false
            done()
            resolve([...messages])
            return true
          },
        }
        const fail = (e: Error): void => {
          done()
          reject(e)
        }
        const timer = setTimeout(() => {
          fail(
            new Error(
              `collectTopic(${topic}): waitFor timed out after ${Date.now() - started} ms; ` +
                `${messages.length} message(s) arrived${describe(messages)}`
            )
          )
        }, timeoutMs)
        const done = (): void => {
          clearTimeout(timer)
          waiters.delete(waiter)
          waiterRejects.delete(fail)
        }
        waiters.add(waiter)
        waiterRejects.add(fail)
        waiter.check()
      })
    },
    async stop () {
      if (stopped) return
      stopped = true
      for (const fail of [...waiterRejects]) fail(new Error(`collectTopic(${topic}): collector stopped`))
      removeJoinListener()
      await consumer.disconnect()
    },
  }
}
