import envSchema from 'env-schema'
import { Type, type Static } from '@sinclair/typebox'
import { clowderEnv } from './clowder.js'
import { ConfigError } from './config-error.js'

const ConfigSchema = Type.Object({
  NODE_ENV: Type.Union([Type.Literal('development'), Type.Literal('production'), Type.Literal('test')], { default: 'development' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8000 }),
  METRICS_PORT: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
  PUSH_PORT: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
  HOST: Type.String({ minLength: 1, default: '0.0.0.0' }),
  LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map(l => Type.Literal(l)), { default: 'info' }),

  DATA_DIR: Type.String({ minLength: 1, default: './data' }),
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  DATABASE_CA_PATH: Type.Optional(Type.String({ minLength: 1 })),
  EMBEDDED_PG_PORT: Type.Integer({ minimum: 1, maximum: 65535, default: 54329 }),

  SOURCES_API_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
  SOURCES_PSK: Type.Optional(Type.String({ minLength: 1 })),
  AWS_REGION: Type.String({ minLength: 1, default: 'us-east-1' }),
  AWS_STS_ENDPOINT: Type.Optional(Type.String({ pattern: '^https?://' })),
  RHSM_API_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
  RHSM_CLIENT_CERT: Type.Optional(Type.String({ minLength: 1 })),
  RHSM_CLIENT_KEY: Type.Optional(Type.String({ minLength: 1 })),
  RHSM_CA: Type.Optional(Type.String({ minLength: 1 })),
  RHSM_MODE: Type.Union([Type.Literal('live'), Type.Literal('dry-run')], { default: 'live' }),

  KAFKA_BROKERS: Type.Optional(Type.String({ pattern: '^[^,\\s]+(,[^,\\s]+)*$' })),
  KAFKA_SASL_MECHANISM: Type.Optional(Type.String({ pattern: '^([Pp][Ll][Aa][Ii][Nn]|[Ss][Cc][Rr][Aa][Mm]-[Ss][Hh][Aa]-(256|512))$' })),
  KAFKA_SASL_USERNAME: Type.Optional(Type.String({ minLength: 1 })),
  KAFKA_SASL_PASSWORD: Type.Optional(Type.String({ minLength: 1 })),
  KAFKA_SSL: Type.Boolean({ default: false }),
  KAFKA_CA_PATH: Type.Optional(Type.String({ minLength: 1 })),
  SOURCES_STATUS_TOPIC: Type.String({ minLength: 1, default: 'platform.sources.status' }),
  SOURCES_EVENT_TOPIC: Type.String({ minLength: 1, default: 'platform.sources.event-stream' }),
  KAFKA_CONSUME: Type.Boolean({ default: false }),
  KAFKA_GROUP_ID: Type.String({ minLength: 1, default: 'cloudoreg' }),
  STATUS_SINK: Type.Optional(Type.Union([Type.Literal('kafka'), Type.Literal('http'), Type.Literal('none')])),

  PUSH_TOKEN: Type.Optional(Type.String({ minLength: 8 })),
  PUSH_WEBHOOK_SECRET: Type.Optional(Type.String({ pattern: '^whsec_[A-Za-z0-9+/=]{16,}$' })),
  PUSH_AUTH: Type.Optional(Type.Literal('none')),
  AVAILABILITY_CHECK_TOKEN: Type.Optional(Type.String({ minLength: 8 })),
  INTERNAL_TOKEN: Type.Optional(Type.String({ minLength: 8 })),

  CONCURRENCY: Type.Integer({ minimum: 1, maximum: 1024, default: 16 }),
  UPSTREAM_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 10000 }),
  UPSTREAM_CALL_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 10, default: 3 }),
  RETRY_MAX_ATTEMPTS: Type.Integer({ minimum: 1, default: 14 }),
  RETRY_BASE_DELAY_MS: Type.Integer({ minimum: 1, default: 2000 }),
  RETRY_MAX_DELAY_MS: Type.Integer({ minimum: 1, default: 15 * 60 * 1000 }),
  INBOX_WINDOW: Type.Integer({ minimum: 1, default: 1000 }),
  SHUTDOWN_GRACE_MS: Type.Integer({ minimum: 0, default: 10000 }),
  LEASE_MS: Type.Integer({ minimum: 1000, default: 30000 }),
  RETENTION_DAYS: Type.Integer({ minimum: 1, default: 30 }),
  MAX_BACKLOG: Type.Integer({ minimum: 1, default: 500000 }),

  // OpenTelemetry's standard variables (the SDK reads them too); no endpoint, no tracing.
  OTEL_EXPORTER_OTLP_ENDPOINT: Type.Optional(Type.String({ pattern: '^https?://' })),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: Type.Optional(Type.String({ pattern: '^https?://' })),
  OTEL_SERVICE_NAME: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  OTEL_TRACES_SAMPLER: Type.Optional(Type.Union(['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio']
    .map(s => Type.Literal(s)))),
  OTEL_TRACES_SAMPLER_ARG: Type.Optional(Type.Number({ minimum: 0, maximum: 1 }))
})

export type Config = Static<typeof ConfigSchema> & {
  kafkaBrokers: string[]
  statusSink: 'kafka' | 'http' | 'none'
}

/**
 * Reads and validates the environment once; a bad value names its variable. With ACG_CONFIG set,
 * Clowder's cdappconfig.json fills every setting the environment leaves unset.
 */
export function loadConfig (env: NodeJS.ProcessEnv = process.env): Config {
  const clowder = env.ACG_CONFIG ? clowderEnv(env.ACG_CONFIG, env) : {}
  // An empty variable means "unset" to an operator, not "the empty string".
  const data: Record<string, string> = {}
  for (const key of Object.keys(ConfigSchema.properties)) {
    const value = env[key]
    if (value !== undefined && value !== '') data[key] = value
    else if (clowder[key] !== undefined) data[key] = clowder[key]
  }
  let raw: Static<typeof ConfigSchema>
  try {
    raw = envSchema<Static<typeof ConfigSchema>>({ schema: ConfigSchema, data, env: false, dotenv: false })
  } catch (err) {
    const message = (err as Error).message.replace(/env\//g, '').replace(/^env /, '')
    // A value from cdappconfig.json is fixed there, not in the environment: say so.
    const fromClowder = Object.keys(clowder).filter(key => new RegExp(`\\b${key}\\b`).test(message))
    const origin = fromClowder.length > 0 ? ` (${fromClowder.join(', ')} from ACG_CONFIG=${env.ACG_CONFIG})` : ''
    throw new ConfigError(`Invalid configuration: ${message}${origin}`)
  }
  if (raw.DATABASE_CA_PATH !== undefined && raw.DATABASE_URL === undefined) {
    throw new ConfigError('Invalid configuration: DATABASE_CA_PATH needs DATABASE_URL (the embedded PostgreSQL uses no TLS)')
  }
  const kafkaBrokers = raw.KAFKA_BROKERS ? raw.KAFKA_BROKERS.split(',') : []
  const statusSink = raw.STATUS_SINK ?? (kafkaBrokers.length > 0 ? 'kafka' : 'http')
  if (statusSink === 'kafka' && kafkaBrokers.length === 0) {
    throw new ConfigError('Invalid configuration: STATUS_SINK=kafka needs KAFKA_BROKERS')
  }
  if ((raw.RHSM_CLIENT_CERT === undefined) !== (raw.RHSM_CLIENT_KEY === undefined)) {
    throw new ConfigError('Invalid configuration: RHSM_CLIENT_CERT and RHSM_CLIENT_KEY go together')
  }
  if (raw.KAFKA_SASL_MECHANISM !== undefined && (raw.KAFKA_SASL_USERNAME === undefined || raw.KAFKA_SASL_PASSWORD === undefined)) {
    throw new ConfigError('Invalid configuration: KAFKA_SASL_MECHANISM needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD')
  }
  if (raw.KAFKA_CONSUME && kafkaBrokers.length === 0) {
    throw new ConfigError('Invalid configuration: KAFKA_CONSUME=true needs KAFKA_BROKERS')
  }
  // Shadow mode: a deployment that tells sources-api nothing must not change RHSM either.
  const RHSM_MODE = statusSink === 'none' ? 'dry-run' : raw.RHSM_MODE
  return { ...raw, RHSM_MODE, kafkaBrokers, statusSink }
}

/** Settings without which events are stored but cannot be processed. */
export function missingUpstreamSettings (config: Config): string[] {
  const missing: string[] = []
  if (!config.SOURCES_API_URL) missing.push('SOURCES_API_URL')
  if (!config.SOURCES_PSK) missing.push('SOURCES_PSK')
  if (!config.RHSM_API_URL) missing.push('RHSM_API_URL')
  return missing
}

/** Whether the push route is open to anyone who can reach it. */
export function pushIsOpen (config: Config): boolean {
  return config.PUSH_TOKEN === undefined && config.PUSH_WEBHOOK_SECRET === undefined
}

/** Production refuses to start half-configured rather than silently store events for ever. */
export function assertProductionReady (config: Config): void {
  if (config.NODE_ENV !== 'production') return
  const missing = missingUpstreamSettings(config)
  if (!config.DATABASE_URL) missing.push('DATABASE_URL')
  if (missing.length > 0) {
    throw new ConfigError(`Invalid configuration: NODE_ENV=production needs ${missing.join(', ')}`)
  }
  if (pushIsOpen(config) && config.PUSH_AUTH !== 'none') {
    throw new ConfigError('Invalid configuration: NODE_ENV=production needs push authentication: PUSH_TOKEN or PUSH_WEBHOOK_SECRET, ' +
      'or PUSH_AUTH=none when a network policy protects the push route (Knative sends no credential)')
  }
}
