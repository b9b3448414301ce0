import type { Batch, Consumer, ConsumerConfig, EachBatchPayload } from 'kafkajs'
import { backoffDelay, type Backoff } from '../backoff.js'
import { KAFKA_RETRY, kafkaClient, type KafkaConnection } from '../kafka/client.js'
import type { Logger } from '../log.js'
import type { IncomingEvent } from '../events/event.js'
import { UnstorableError } from '../store/inbox.js'
import { normaliseKafkaRecord } from './normalise.js'

/** What happened to one batch of records, after its offset was committed. */
export interface BatchReport {
  topic: string
  partition: number
  firstOffset: string
  lastOffset: string
  records: number
  /** New inbox rows, by event type (one entry per row). */
  storedTypes: string[]
  /** Records already in the inbox: read again after a crash or a rebalance, or pushed by a bridge too. */
  duplicates: number
  /** Records that can never be stored (bad JSON, no org id, ...): logged and committed past. */
  skipped: number
  /** Records between this batch's last offset and the partition's high watermark. */
  lag: number
}

export interface KafkaEventConsumerOptions {
  connection: KafkaConnection
  topic: string
  groupId: string
  log: Logger
  /**
   * Stores events durably (the inbox): resolves only after they are committed, with per event
   * its id or null when it was already stored. A rejection leaves the batch's offset uncommitted.
   */
  store: (events: IncomingEvent[]) => Promise<Array<number | null>>
  /** After each batch's inbox commit, before its offset commit: counts what the inbox now holds. */
  onBatch?: (report: BatchReport) => void
  /** Assigned partitions changed (0 while not in the group). */
  onAssignment?: (partitions: number) => void
  /** Runs after the inbox commit and before the offset commit of each batch (a hook from buildApp's options). */
  afterInboxCommit?: (report: BatchReport) => void | Promise<void>
  /** Consumer tuning over the defaults below. */
  consumer?: Partial<Omit<ConsumerConfig, 'groupId'>>
}

export interface KafkaEventConsumer {
  /** Connects and consumes in the background; never throws, retries until stop(). */
  start: () => void
  /** Finishes the batch in flight (stored and committed), leaves the group, disconnects. */
  stop: () => Promise<void>
}

/** Between new consumers, while a broker or the topic is not there (yet). */
const RESTART_BACKOFF: Backoff = { firstMs: 1000, maxMs: 30_000, jitter: 0.5 }

/** kafkajs retries errors marked retriable, and restarts the consumer after them. */
class StoreFailed extends Error {
  readonly retriable = true
}

/** JSON.parse messages quote the start of the input: keep the reason, never the content. */
function safeReason (detail: string): string {
  return detail.replace(/"(?:[^"\\]|\\.)*"/g, '"…"').slice(0, 300)
}

/**
 * Direct Kafka mode: consumes the sources event topic into the inbox. A batch's records are
 * stored in one call, and the batch's offset is committed only after that store resolved, so
 * a crash anywhere re-reads records (deduplicated by topic/partition/offset) and loses none.
 */
export function createKafkaEventConsumer (o: KafkaEventConsumerOptions): KafkaEventConsumer {
  const kafka = kafkaClient(o.connection, o.log, 'warn')

  let stopping = false
  let consumer: Consumer | undefined
  let started = false
  let restartTimer: NodeJS.Timeout | undefined
  /** Restarts since the consumer last joined its group. */
  let restarts = 0

  async function eachBatch ({ batch, resolveOffset, heartbeat, commitOffsetsIfNecessary, isRunning, isStale }: EachBatchPayload): Promise<void> {
    if (!isRunning() || isStale() || batch.messages.length === 0) return
    let events: IncomingEvent[] = []
    const offsets: string[] = []
    let skipped = 0
    // Never the value or the headers: they may carry an identity. Retrying cannot fix the record, and
    // holding its offset would stop the partition for good, so it is skipped past (and counted).
    const skip = (offset: string, reason: string): void => {
      skipped++
      o.log.error({ topic: batch.topic, partition: batch.partition, offset, reason: safeReason(reason) },
        'Kafka record skipped: it can never be stored')
    }
    for (const m of batch.messages) {
      const r = normaliseKafkaRecord({ topic: batch.topic, partition: batch.partition, offset: m.offset, value: m.value, headers: m.headers })
      if (!r.ok) {
        skip(m.offset, r.detail)
        continue
      }
      events.push(r.event)
      offsets.push(m.offset)
      if (r.notes.length > 0) {
        o.log.warn({ topic: batch.topic, partition: batch.partition, offset: m.offset, notes: r.notes.map(safeReason) },
          'Kafka record stored without what it could not use')
      }
    }

    let ids: Array<number | null> = []
    if (events.length > 0) {
      // A group commit may wait behind others; keep the group membership meanwhile (kafkajs
      // sends a heartbeat only when heartbeatInterval has passed).
      const beat = setInterval(() => { heartbeat().catch(() => {}) }, 1000)
      try {
        try {
          ids = await o.store(events)
        } catch (err) {
          if (!(err instanceof UnstorableError)) throw err
          // The database refused a record the checks above let through: store them one by one, in
          // order, and skip only those it refuses.
          const kept: IncomingEvent[] = []
          ids = []
          for (const [i, event] of events.entries()) {
            try {
              ids.push(...await o.store([event]))
              kept.push(event)
            } catch (e) {
              if (!(e instanceof UnstorableError)) throw e
              skip(offsets[i], e.message)
            }
          }
          events = kept
        }
      } catch (err) {
        o.log.error({ err, topic: batch.topic, partition: batch.partition, offset: batch.firstOffset() },
          'storing consumed Kafka records failed; they will be read again')
        throw new StoreFailed((err as Error).message)
      } finally {
        clearInterval(beat)
      }
    }

    const report = batchReport(batch, events, ids, skipped)
    // Counted as soon as the inbox holds them: the pipeline may finish an event before the offset
    // commit below returns, and a count that lagged its own event's outcome would read as lost.
    o.onBatch?.(report)
    await o.afterInboxCommit?.(report)
    // Every record of the batch is now stored, a duplicate, or skipped: commit past all of them.
    resolveOffset(report.lastOffset)
    await commitOffsetsIfNecessary({
      topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: (BigInt(batch.lastOffset()) + 1n).toString() }] }]
    })
    await heartbeat()
  }

  /** Returns the wait before the new consumer, unless one is already due. */
  function scheduleRestart (): number | undefined {
    if (stopping || restartTimer !== undefined) return
    const delay = backoffDelay(RESTART_BACKOFF, ++restarts)
    restartTimer = setTimeout(() => {
      restartTimer = undefined
      void run()
    }, delay)
    restartTimer.unref()
    return delay
  }

  async function run (): Promise<void> {
    if (stopping) return
    const c = kafka.consumer({
      groupId: o.groupId,
      // The event topic belongs to sources-api: a misspelt name must not create a new, empty one.
      allowAutoTopicCreation: false,
      // Bounds how long stop() waits for a fetch in flight.
      maxWaitTimeInMs: 1000,
      // A killed replica's partitions move to the others after this long (the Java client's long-time
      // default). A batch that waits on the inbox keeps heartbeating, so only a dead or frozen process
      // loses its partitions, and then its uncommitted records are read again, as duplicates.
      sessionTimeout: 10_000,
      rebalanceTimeout: 30_000,
      heartbeatInterval: 3000,
      retry: {
        ...KAFKA_RETRY,
        async restartOnFailure (err) {
          if (stopping) return false
          o.log.warn({ error: err.message }, 'Kafka consumer failed; kafkajs restarts it')
          return true
        }
      },
      ...o.consumer
    })
    consumer = c
    c.on(c.events.GROUP_JOIN, ({ payload }) => {
      const partitions = payload.memberAssignment[o.topic] ?? []
      restarts = 0
      o.onAssignment?.(partitions.length)
      o.log.info({ topic: o.topic, groupId: o.groupId, partitions }, 'Kafka consumer joined its group')
    })
    c.on(c.events.CRASH, ({ payload }) => {
      o.onAssignment?.(0)
      if (payload.restart) return
      // kafkajs gives up on errors it thinks permanent; a broker or topic may still come back.
      o.log.error({ error: payload.error.message }, 'Kafka consumer stopped after an error; starting a new one')
      if (consumer === c) consumer = undefined
      scheduleRestart()
    })
    try {
      // stop() may come while any of these waits for a broker.
      await c.connect()
      if (stopping) return await c.disconnect()
      // A group with no committed offset starts at the oldest record kept: nothing emitted before
      // the first start is lost, and replays are safe (handlers re-read the truth over REST).
      await c.subscribe({ topic: o.topic, fromBeginning: true })
      if (stopping) return await c.disconnect()
      await c.run({ eachBatch, eachBatchAutoResolve: false, autoCommit: false, partitionsConsumedConcurrently: 4 })
    } catch (err) {
      if (consumer === c) consumer = undefined
      await c.disconnect().catch(() => {})
      if (stopping) return
      const retryInMs = scheduleRestart()
      o.log.warn({ error: (err as Error).message, brokers: o.connection.brokers, topic: o.topic, retryInMs },
        'Kafka consumer could not start; retrying')
    }
  }

  return {
    start () {
      if (started || stopping) return
      started = true
      void run()
    },
    async stop () {
      stopping = true
      clearTimeout(restartTimer)
      // Not waiting for a start still trying an unreachable broker: it sees `stopping` when it
      // returns, and kafkajs restarts nothing once restartOnFailure says no.
      const c = consumer
      consumer = undefined
      // Waits for the batch in flight: its store and offset commit finish first.
      await c?.disconnect().catch(err => { o.log.warn({ error: (err as Error).message }, 'Kafka consumer disconnect failed') })
      o.onAssignment?.(0)
      if (c !== undefined) o.log.info({ topic: o.topic, groupId: o.groupId }, 'Kafka consumer stopped: batch in flight committed, group left')
    }
  }
}

function batchReport (batch: Batch, events: IncomingEvent[], ids: Array<number | null>, skipped: number): BatchReport {
  const storedTypes: string[] = []
  ids.forEach((id, i) => { if (id !== null) storedTypes.push(events[i].eventType) })
  let lag = 0
  try {
    lag = Number(batch.offsetLag())
  } catch {}
  return {
    topic: batch.topic,
    partition: batch.partition,
    firstOffset: batch.messages[0].offset,
    lastOffset: batch.messages[batch.messages.length - 1].offset,
    records: batch.messages.length,
    storedTypes,
    duplicates: ids.length - storedTypes.length,
    skipped,
    lag
  }
}
