import t from 'tap'
import { assertProductionReady, loadConfig, missingUpstreamSettings } from '../src/config.js'

t.test('defaults', async t => {
  const c = loadConfig({})
  t.match(c, {
    PORT: 8000,
    HOST: '0.0.0.0',
    DATA_DIR: './data',
    AWS_REGION: 'us-east-1',
    SOURCES_STATUS_TOPIC: 'platform.sources.status',
    CONCURRENCY: 16,
    LOG_LEVEL: 'info',
    statusSink: 'http',
    kafkaBrokers: []
  })
  t.equal(c.DATABASE_URL, undefined)
  t.same(missingUpstreamSettings(c), ['SOURCES_API_URL', 'SOURCES_PSK', 'RHSM_API_URL'])
})

t.test('values are coerced; Kafka brokers select the Kafka sink; empty means unset', async t => {
  const c = loadConfig({ PORT: '9000', CONCURRENCY: '64', KAFKA_BROKERS: 'a:9092,b:9092', SOURCES_PSK: '' })
  t.equal(c.PORT, 9000)
  t.equal(c.CONCURRENCY, 64)
  t.same(c.kafkaBrokers, ['a:9092', 'b:9092'])
  t.equal(c.statusSink, 'kafka')
  t.equal(c.SOURCES_PSK, undefined)
})

t.test('a bad value stops start-up with a message naming the variable', async t => {
  const bad: Array<[Record<string, string>, RegExp]> = [
    [{ PORT: 'eighty' }, /PORT/],
    [{ PORT: '70000' }, /PORT/],
    [{ CONCURRENCY: '0' }, /CONCURRENCY/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL/],
    [{ SOURCES_API_URL: 'sources.local' }, /SOURCES_API_URL/],
    [{ DATABASE_URL: 'mysql://x' }, /DATABASE_URL/],
    [{ KAFKA_BROKERS: 'a:1,,b:2' }, /KAFKA_BROKERS/],
    [{ STATUS_SINK: 'kafka' }, /STATUS_SINK=kafka needs KAFKA_BROKERS/],
    [{ RHSM_CLIENT_CERT: '/tmp/c.pem' }, /RHSM_CLIENT_CERT and RHSM_CLIENT_KEY/],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'jaeger:4318' }, /OTEL_EXPORTER_OTLP_ENDPOINT/],
    [{ OTEL_TRACES_SAMPLER: 'sometimes' }, /OTEL_TRACES_SAMPLER/],
    [{ OTEL_TRACES_SAMPLER_ARG: '2' }, /OTEL_TRACES_SAMPLER_ARG/]
  ]
  for (const [env, message] of bad) {
    t.throws(() => loadConfig(env), { name: 'Error', code: 'CLOUDOREG_CONFIG', message }, JSON.stringify(env))
  }
})

t.test('production refuses missing upstream and database settings', async t => {
  t.throws(() => assertProductionReady(loadConfig({ NODE_ENV: 'production' })),
    { message: /NODE_ENV=production needs SOURCES_API_URL, SOURCES_PSK, RHSM_API_URL, DATABASE_URL/ })
  t.doesNotThrow(() => assertProductionReady(loadConfig({
    NODE_ENV: 'production',
    SOURCES_API_URL: 'http://sources',
    SOURCES_PSK: 'x',
    RHSM_API_URL: 'https://rhsm/v1',
    DATABASE_URL: 'postgres://u@db/cloudoreg',
    PUSH_AUTH: 'none',
    INTERNAL_TOKEN: 'internal-token-0123456789abcdefgh'
  })))
  t.doesNotThrow(() => assertProductionReady(loadConfig({})), 'development starts without them')
})

t.test('shadow mode: STATUS_SINK=none also makes RHSM dry-run', async t => {
  t.equal(loadConfig({}).RHSM_MODE, 'live')
  t.equal(loadConfig({ RHSM_MODE: 'dry-run' }).RHSM_MODE, 'dry-run')
  t.match(loadConfig({ STATUS_SINK: 'none', RHSM_MODE: 'live' }), { statusSink: 'none', RHSM_MODE: 'dry-run' })
  t.throws(() => loadConfig({ RHSM_MODE: 'maybe' }), { message: /RHSM_MODE/ })
})
