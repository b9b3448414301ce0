import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Counter, Gauge } from 'prom-client'
import { createKafkaEventConsumer, type BatchReport, type KafkaEventConsumerOptions } from '../../ingress/kafka-consumer.js'
import { kafkaConnection } from '../../kafka/client.js'

/**
 * Direct Kafka mode (KAFKA_CONSUME=true): consumes SOURCES_EVENT_TOPIC as group KAFKA_GROUP_ID
 * into the same inbox as pushed events; the scheduler is woken by the inbox append as for a push.
 */
async function kafkaConsumer (app: FastifyInstance, { afterInboxCommit }: Pick<KafkaEventConsumerOptions, 'afterInboxCommit'>): Promise<void> {
  const { config } = app
  const registry = app.metrics.registry
  const records = new Counter({
    name: 'cloudoreg_kafka_records_total',
    help: 'Records consumed from the event topic (direct Kafka mode), by outcome: stored, duplicate (read again), skipped (can never be stored)',
    labelNames: ['outcome'],
    registers: [registry]
  })
  for (const outcome of ['stored', 'duplicate', 'skipped']) records.inc({ outcome }, 0)
  const lag = new Gauge({
    name: 'cloudoreg_kafka_consumer_lag',
    help: 'Records of the event topic not yet consumed, per partition, as of the last batch',
    labelNames: ['partition'],
    registers: [registry]
  })
  const assigned = new Gauge({
    name: 'cloudoreg_kafka_consumer_partitions',
    help: 'Partitions of the event topic assigned to this replica (0: not consuming)',
    registers: [registry]
  })

  const consumer = createKafkaEventConsumer({
    connection: kafkaConnection(config),
    topic: config.SOURCES_EVENT_TOPIC,
    groupId: config.KAFKA_GROUP_ID,
    log: app.log,
    store: async events => app.store.inbox.append(events),
    onAssignment: n => assigned.set(n),
    onBatch (r: BatchReport) {
      for (const type of r.storedTypes) app.metrics.eventsReceived(type)
      records.inc({ outcome: 'stored' }, r.storedTypes.length)
      records.inc({ outcome: 'duplicate' }, r.duplicates)
      records.inc({ outcome: 'skipped' }, r.skipped)
      lag.set({ partition: String(r.partition) }, r.lag)
      app.log.info({
        partition: r.partition, offsets: `${r.firstOffset}-${r.lastOffset}`, stored: r.storedTypes.length, duplicates: r.duplicates, skipped: r.skipped
      }, 'Kafka records stored')
    },
    afterInboxCommit
  })

  // Starting before the pipeline is harmless: an append wakes nothing until the pipeline starts, and
  // then it reads the pending inbox; joining the group takes longer anyway.
  app.addHook('onReady', async () => {
    consumer.start()
    app.log.info({ topic: config.SOURCES_EVENT_TOPIC, groupId: config.KAFKA_GROUP_ID, brokers: config.kafkaBrokers }, 'direct Kafka mode: consuming the event topic')
  })
  // preClose: the batch in flight is stored and committed while the database is still open, and the
  // group is left, so other replicas take the partitions at once.
  app.addHook('preClose', async () => {
    await consumer.stop()
  })
}

export default fp(kafkaConsumer, { name: 'kafka-consumer', dependencies: ['store', 'metrics'] })
