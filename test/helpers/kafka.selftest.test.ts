/**
 * Self-test of test/helpers/kafka.ts against librdkafka's mock cluster, and
 * a record of how a kafkajs producer behaves across a broker stall (SIGSTOP).
 *
 * Set KAFKA_SELFTEST_LONG=1 to also run the 40 s stall case (a stall longer
 * than requestTimeout while the producer connects), which shows why the
 * caller must disconnect()+connect() and retry after a failed send.
 */
import t from 'tap'
import { Kafka, type Producer } from 'kafkajs'
import {
  collectTopic,
  kafkaClientDefaults,
  kafkaProducerDefaults,
  kafkaTestLogLevel,
  startMockKafka,
  type MockKafka,
} from './kafka.js'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Tracks a promise's state without consuming its rejection. */
function track<T> (p: Promise<T>): { settled: () => boolean; promise: Promise<T> } {
  let settled = false
  p.then(
    () => (settled = true),
    () => (settled = true)
  )
  return { settled: () => settled, promise: p }
}

function newProducer (brokers: string[], clientId: string): Producer {
  const kafka = new Kafka({ ...kafkaClientDefaults, clientId, logLevel: kafkaTestLogLevel, brokers })
  return kafka.producer({ ...kafkaProducerDefaults })
}

const fmt = (ms: number): string => `${(ms / 1000).toFixed(2)} s`

t.test('kafka helpers against the kcat mock cluster', async (t) => {
  const t0 = Date.now()
  const mock: MockKafka = await startMockKafka()
  t.teardown(() => mock.stop())
  t.comment(`mock cluster pid ${mock.pid} started in ${fmt(Date.now() - t0)}: ${mock.brokers.join(',')}`)
  t.equal(mock.brokers.length, 3, 'three mock brokers')
  t.ok(mock.brokers.every((b) => /^127\.0\.0\.1:\d+$/.test(b)), 'brokers are host:port')

  const producer = newProducer(mock.brokers, 'selftest-producer')
  await producer.connect()
  t.teardown(() => producer.disconnect())

  await t.test('round trip: key, value and headers', async (t) => {
    const topic = `selftest-roundtrip-${Date.now()}`
    const tSend = Date.now()
    const res = await producer.send({
      topic,
      acks: -1,
      messages: [1, 2, 3].map((i) => ({
        key: 'account-42',
        value: JSON.stringify({ seq: i }),
        headers: { 'event-type': 'status', seq: String(i) },
      })),
    })
    t.comment(`first send to a new topic (auto-creation) took ${fmt(Date.now() - tSend)}`)
    t.equal(res[0]?.errorCode, 0, 'produce acknowledged')

    const tJoin = Date.now()
    const collector = await collectTopic(mock.brokers, topic)
    t.teardown(() => collector.stop())
    t.comment(`collector joined its group in ${fmt(Date.now() - tJoin)}`)
    const got = await collector.waitFor((ms) => ms.length >= 3, 15_000)
    t.comment(`3 messages collected ${fmt(Date.now() - tJoin)} after collectTopic()`)
    t.equal(got.length, 3, 'exactly three messages')
    t.same(
      got.map((m) => m.value),
      ['{"seq":1}', '{"seq":2}', '{"seq":3}'],
      'values in order (same key -> same partition)'
    )
    for (const [i, m] of got.entries()) {
      t.equal(m.key, 'account-42', `message ${i + 1} key`)
      t.same(m.headers, { 'event-type': 'status', seq: String(i + 1) }, `message ${i + 1} headers`)
      t.equal(m.partition, got[0].partition, `message ${i + 1} on the key's partition`)
      t.equal(m.offset, String(i), `message ${i + 1} offset`)
    }

    await t.rejects(
      collector.waitFor((ms) => ms.length >= 4, 300),
      /timed out after \d+ ms; 3 message\(s\) arrived/,
      'waitFor timeout says how many messages arrived'
    )
  })

  await t.test('send during a 5 s stall completes after resume', async (t) => {
    const topic = `selftest-stall-${Date.now()}`
    // Create the topic and the collector first, so only the stall is measured.
    await producer.send({ topic, acks: -1, messages: [{ key: 'k', value: 'before' }] })
    const collector = await collectTopic(mock.brokers, topic)
    t.teardown(() => collector.stop())
    await collector.waitFor((ms) => ms.some((m) => m.value === 'before'), 15_000)

    await mock.pause()
    let resumed = false
    t.teardown(() => {
      if (!resumed) return mock.resume()
    })
    const tSend = Date.now()
    const send = track(producer.send({ topic, acks: -1, messages: [{ key: 'k', value: 'during-stall' }] }))
    await sleep(5_000)
    t.notOk(send.settled(), 'send neither succeeds nor fails while the cluster is stopped')
    await mock.resume()
    resumed = true
    const tResume = Date.now()
    const res = await send.promise
    const tDone = Date.now()
    t.comment(`send during stall: ${fmt(tDone - tSend)} total, ${fmt(tDone - tResume)} after resume`)
    t.equal(res[0]?.errorCode, 0, 'send acknowledged after resume')
    t.ok(tDone - tResume < 5_000, 'send completes promptly after resume')

    const got = await collector.waitFor((ms) => ms.some((m) => m.value === 'during-stall'), 15_000)
    t.comment(`message collected ${fmt(Date.now() - tResume)} after resume`)
    t.same(
      got.map((m) => m.value),
      ['before', 'during-stall'],
      'collected exactly once, in order (no duplicate from a retry)'
    )
  })

  await t.test('producer that connects during a 20 s stall recovers after resume', async (t) => {
    const topic = `selftest-connect-stall-${Date.now()}`
    const collector = await collectTopic(mock.brokers, topic)
    t.teardown(() => collector.stop())

    await mock.pause()
    let resumed = false
    t.teardown(() => {
      if (!resumed) return mock.resume()
    })
    const late = newProducer(mock.brokers, 'selftest-late-producer')
    t.teardown(() => late.disconnect())
    const tStart = Date.now()
    const work = track(
      (async () => {
        await late.connect()
        const tConnected = Date.now()
        const res = await late.send({ topic, acks: -1, messages: [{ key: 'k', value: 'after-outage' }] })
        return { tConnected, res }
      })()
    )
    await sleep(20_000)
    t.notOk(work.settled(), 'connect+send neither succeeds nor fails during a 20 s stall')
    await mock.resume()
    resumed = true
    const tResume = Date.now()
    const { tConnected, res } = await work.promise
    const tDone = Date.now()
    t.comment(
      `connect during stall: connected ${fmt(tConnected - tResume)} after resume, ` +
        `send done ${fmt(tDone - tResume)} after resume (${fmt(tDone - tStart)} total)`
    )
    t.equal(res[0]?.errorCode, 0, 'send acknowledged')
    t.ok(tDone - tResume < 5_000, 'recovers promptly after resume')
    const got = await collector.waitFor((ms) => ms.some((m) => m.value === 'after-outage'), 15_000)
    t.comment(`collector (stalled too) received it ${fmt(Date.now() - tResume)} after resume`)
    t.equal(got.filter((m) => m.value === 'after-outage').length, 1, 'collected exactly once')
  })

  await t.test(
    'stall longer than requestTimeout during connect: caller must reconnect and retry',
    { skip: process.env.KAFKA_SELFTEST_LONG === '1' ? false : 'set KAFKA_SELFTEST_LONG=1 (takes ~45 s)' },
    async (t) => {
      const topic = `selftest-long-stall-${Date.now()}`
      const collector = await collectTopic(mock.brokers, topic)
      t.teardown(() => collector.stop())

      const STALL_MS = 40_000 // > requestTimeout (30 s)
      await mock.pause()
      let resumed = false
      t.teardown(() => {
        if (!resumed) return mock.resume()
      })
      setTimeout(() => {
        resumed = true
        void mock.resume()
      }, STALL_MS).unref()
      const tStart = Date.now()

      const p = newProducer(mock.brokers, 'selftest-long-producer')
      t.teardown(() => p.disconnect())
      // The relay pattern: every error is retried after disconnect()+connect().
      const errors: string[] = []
      let attempts = 0
      for (;;) {
        attempts++
        try {
          await p.connect()
          await p.send({ topic, acks: -1, messages: [{ key: 'k', value: 'long-outage' }] })
          break
        } catch (err) {
          const e = err as Error
          errors.push(`${fmt(Date.now() - tStart)} ${e.name}: ${e.message}`)
          await p.disconnect().catch(() => undefined)
          await sleep(1_000)
        }
        if (Date.now() - tStart > STALL_MS + 60_000) throw new Error(`gave up: ${errors.join('; ')}`)
      }
      const tDone = Date.now()
      t.comment(`long stall: delivered after ${attempts} attempt(s), ${fmt(tDone - tStart - STALL_MS)} after resume`)
      for (const e of errors) t.comment(`  error: ${e}`)
      t.ok(attempts >= 1, 'delivered')
      const got = await collector.waitFor((ms) => ms.some((m) => m.value === 'long-outage'), 30_000)
      t.comment(`collector received it ${fmt(Date.now() - tStart - STALL_MS)} after resume`)
      await sleep(1_000) // let any duplicate arrive
      const copies = got.filter((m) => m.value === 'long-outage').length
      const copiesNow = collector.messages.filter((m) => m.value === 'long-outage').length
      t.comment(`copies collected: ${copiesNow} (at-least-once: duplicates are possible after timeouts)`)
      t.ok(copies >= 1, 'message collected')
    }
  )
})
