import envSchema from 'env-schema'
import { Type, type Static } from '@sinclair/typebox'
import { closest, distance } from 'fastest-levenshtein'
import { clowderEnv } from './clowder.js'
import { ConfigError } from './config-error.js'

/** Shorter tokens can be guessed or were never meant as secrets (32 characters: 192 bits in base64). */
export const MIN_TOKEN_LENGTH = 32
/** The HMAC key a webhook secret decodes to, at the least. */
export const MIN_WEBHOOK_KEY_BYTES = 24
const HTTP_URL = 'an http:// or https:// URL'

const ConfigSchema = Type.Object({
  NODE_ENV: Type.Union([Type.Literal('development'), Type.Literal('production'), Type.Literal('test')], { default: 'development' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8000 }),
  METRICS_PORT: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
  PUSH_PORT: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
  HOST: Type.String({ minLength: 1, default: '0.0.0.0' }),
  LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map(l => Type.Literal(l)), { default: 'info' }),

  DATA_DIR: Type.String({ minLength: 1, default: './data' }),
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://', description: 'a postgres:// or postgresql:// URL' })),
  DATABASE_CA_PATH: Type.Optional(Type.String({ minLength: 1 })),
  EMBEDDED_PG_PORT: Type.Integer({ minimum: 1, maximum: 65535, default: 54329 }),

  SOURCES_API_URL: Type.Optional(Type.String({ pattern: '^https?://', description: HTTP_URL })),
  SOURCES_PSK: Type.Optional(Type.String({ minLength: 1 })),
  AWS_REGION: Type.String({ minLength: 1, default: 'us-east-1' }),
  AWS_STS_ENDPOINT: Type.Optional(Type.String({ pattern: '^https?://', description: HTTP_URL })),
  RHSM_API_URL: Type.Optional(Type.String({ pattern: '^https?://', description: HTTP_URL })),
  RHSM_CLIENT_CERT: Type.Optional(Type.String({ minLength: 1 })),
  RHSM_CLIENT_KEY: Type.Optional(Type.String({ minLength: 1 })),
  RHSM_CA: Type.Optional(Type.String({ minLength: 1 })),
  RHSM_MODE: Type.Union([Type.Literal('live'), Type.Literal('dry-run')], { default: 'live' }),

  KAFKA_BROKERS: Type.Optional(Type.String({ pattern: '^[^,\\s]+(,[^,\\s]+)*$', description: 'a comma-separated list of host:port, no spaces' })),
  KAFKA_SASL_MECHANISM: Type.Optional(Type.String({ pattern: '^([Pp][Ll][Aa][Ii][Nn]|[Ss][Cc][Rr][Aa][Mm]-[Ss][Hh][Aa]-(256|512))$', description: 'one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (any case)' })),
  KAFKA_SASL_USERNAME: Type.Optional(Type.String({ minLength: 1 })),
  KAFKA_SASL_PASSWORD: Type.Optional(Type.String({ minLength: 1 })),
  KAFKA_SSL: Type.Boolean({ default: false }),
  KAFKA_CA_PATH: Type.Optional(Type.String({ minLength: 1 })),
  SOURCES_STATUS_TOPIC: Type.String({ minLength: 1, default: 'platform.sources.status' }),
  SOURCES_EVENT_TOPIC: Type.String({ minLength: 1, default: 'platform.sources.event-stream' }),
  KAFKA_CONSUME: Type.Boolean({ default: false }),
  KAFKA_GROUP_ID: Type.String({ minLength: 1, default: 'cloudoreg' }),
  STATUS_SINK: Type.Optional(Type.Union([Type.Literal('kafka'), Type.Literal('http'), Type.Literal('none')])),

  PUSH_TOKEN: Type.Optional(Type.String({ minLength: MIN_TOKEN_LENGTH, description: `at least ${MIN_TOKEN_LENGTH} characters` })),
  PUSH_WEBHOOK_SECRET: Type.Optional(Type.String({ pattern: '^whsec_[A-Za-z0-9+/]+={0,2}$', description: `whsec_ followed by canonical base64 of at least ${MIN_WEBHOOK_KEY_BYTES} bytes` })),
  PUSH_AUTH: Type.Optional(Type.Literal('none')),
  INTERNAL_TOKEN: Type.Optional(Type.String({ minLength: MIN_TOKEN_LENGTH })),

  HTTP_REQUEST_TIMEOUT_MS: Type.Integer({ minimum: 1000, default: 30000 }),
  HTTP_IDLE_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 10000 }),
  HTTP_MAX_CONNECTIONS: Type.Integer({ minimum: 1, default: 256 }),
  MAX_BODY_BYTES_IN_FLIGHT: Type.Integer({ minimum: 4 * 1024 * 1024, default: 32 * 1024 * 1024 }),
  DATABASE_POOL_SIZE: Type.Integer({ minimum: 2, maximum: 200, default: 20 }),
  DATABASE_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 10000 }),

  CONCURRENCY: Type.Integer({ minimum: 1, maximum: 1024, default: 16 }),
  UPSTREAM_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 10000 }),
  UPSTREAM_CALL_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 10, default: 3 }),
  RETRY_MAX_ATTEMPTS: Type.Integer({ minimum: 1, default: 14 }),
  RETRY_BASE_DELAY_MS: Type.Integer({ minimum: 1, default: 2000 }),
  RETRY_MAX_DELAY_MS: Type.Integer({ minimum: 1, default: 15 * 60 * 1000 }),
  STATUS_MAX_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 100, default: 10 }),
  CHECK_REUSE_SECONDS: Type.Integer({ minimum: 0, maximum: 86400, default: 300 }),
  CHECK_ORG_PER_MINUTE: Type.Integer({ minimum: 1, maximum: 1000000, default: 600 }),
  CHECK_TOTAL_PER_MINUTE: Type.Integer({ minimum: 1, maximum: 1000000, default: 6000 }),
  INBOX_WINDOW: Type.Integer({ minimum: 1, default: 1000 }),
  // Calls per second to each upstream, in total across all replicas (each takes its share).
  STS_MAX_RPS: Type.Integer({ minimum: 1, maximum: 100000, default: 50 }),
  RHSM_MAX_RPS: Type.Integer({ minimum: 1, maximum: 100000, default: 20 }),
  SOURCES_MAX_RPS: Type.Integer({ minimum: 1, maximum: 100000, default: 100 }),
  SHUTDOWN_GRACE_MS: Type.Integer({ minimum: 0, default: 10000 }),
  LEASE_MS: Type.Integer({ minimum: 1000, default: 30000 }),
  RETENTION_DAYS: Type.Integer({ minimum: 1, default: 30 }),
  MAX_BACKLOG: Type.Integer({ minimum: 1, default: 500000 }),
  MAX_EVENT_LOOP_DELAY_MS: Type.Integer({ minimum: 100, default: 1000 }),
  // Seconds between scheduled reconciliation dry runs; unset: none.
  RECONCILE_INTERVAL: Type.Optional(Type.Integer({ minimum: 1, maximum: 7 * 86400 })),

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

type SettingSchema = { anyOf?: Array<{ const?: unknown }>, const?: unknown, type?: string, minimum?: number, maximum?: number, minLength?: number, description?: string }

/** What a setting accepts, in words, from its schema. */
function expected (schema: SettingSchema): string {
  if (schema.anyOf !== undefined) return `one of ${schema.anyOf.map(s => String(s.const)).join(', ')}`
  if (schema.const !== undefined) return String(schema.const)
  if (schema.description !== undefined) return schema.description
  if (schema.type === 'boolean') return 'true or false'
  if (schema.type === 'integer') {
    const range = schema.maximum !== undefined ? ` from ${schema.minimum ?? 0} to ${schema.maximum}` : schema.minimum !== undefined ? ` of at least ${schema.minimum}` : ''
    return `an integer${range}`
  }
  return schema.minLength !== undefined && schema.minLength > 1 ? `at least ${schema.minLength} characters` : 'a non-empty string'
}

// Values shown back in a message: never those that may hold a secret.
const SHOWN = new Set(['boolean', 'integer', undefined])

/** One problem per setting, with what it accepts (ajv reports each union member apart). */
function schemaProblems (errors: Array<{ instancePath: string }>, data: Record<string, string>, origin: (key: string) => string): string[] {
  const keys = [...new Set(errors.map(e => e.instancePath.replace(/^\//, '').split('/')[0]).filter(k => k !== ''))]
  return keys.map(key => {
    const schema = (ConfigSchema.properties as Record<string, SettingSchema>)[key]
    const value = SHOWN.has(schema.type) ? `=${data[key]}` : ''
    return `${key}${value}${origin(key)} must be ${expected(schema)}`
  })
}

/**
 * Reads and validates the environment once, reporting every problem at once, each naming its
 * variable. With ACG_CONFIG set, Clowder's cdappconfig.json fills every setting the environment
 * leaves unset.
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
  // A value from cdappconfig.json is fixed there, not in the environment: say so.
  const origin = (key: string): string => clowder[key] !== undefined && data[key] === clowder[key] && env[key] !== clowder[key] ? ` (${key} from ACG_CONFIG=${env.ACG_CONFIG})` : ''
  let raw: Static<typeof ConfigSchema>
  try {
    raw = envSchema<Static<typeof ConfigSchema>>({ schema: ConfigSchema, data: { ...data }, env: false, dotenv: false })
  } catch (err) {
    const errors = (err as { errors?: Array<{ instancePath: string }> }).errors ?? []
    throw new ConfigError(schemaProblems(errors, data, origin))
  }
  const problems: string[] = []
  if (raw.PUSH_WEBHOOK_SECRET !== undefined && webhookKeyProblem(raw.PUSH_WEBHOOK_SECRET) !== null) problems.push(webhookKeyProblem(raw.PUSH_WEBHOOK_SECRET)!)
  if (raw.DATABASE_CA_PATH !== undefined && raw.DATABASE_URL === undefined) {
    problems.push('DATABASE_CA_PATH needs DATABASE_URL (the embedded PostgreSQL uses no TLS)')
  }
  const kafkaBrokers = raw.KAFKA_BROKERS ? raw.KAFKA_BROKERS.split(',') : []
  const statusSink = raw.STATUS_SINK ?? (kafkaBrokers.length > 0 ? 'kafka' : 'http')
  if (statusSink === 'kafka' && kafkaBrokers.length === 0) problems.push('STATUS_SINK=kafka needs KAFKA_BROKERS')
  if ((raw.RHSM_CLIENT_CERT === undefined) !== (raw.RHSM_CLIENT_KEY === undefined)) problems.push('RHSM_CLIENT_CERT and RHSM_CLIENT_KEY go together')
  if (raw.KAFKA_SASL_MECHANISM !== undefined && (raw.KAFKA_SASL_USERNAME === undefined || raw.KAFKA_SASL_PASSWORD === undefined)) {
    problems.push('KAFKA_SASL_MECHANISM needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD')
  }
  if (raw.KAFKA_CONSUME && kafkaBrokers.length === 0) problems.push('KAFKA_CONSUME=true needs KAFKA_BROKERS')
  if (problems.length > 0) throw new ConfigError(problems)
  // Shadow mode: a deployment that tells sources-api nothing must not change RHSM either.
  const RHSM_MODE = statusSink === 'none' ? 'dry-run' : raw.RHSM_MODE
  return { ...raw, RHSM_MODE, kafkaBrokers, statusSink }
}

/**
 * The HMAC key of a `whsec_` secret. Only canonical base64 counts: Node's decoder skips what it does
 * not understand, so `whsec_` and sixteen `=` would otherwise be an empty key that anyone can sign with.
 */
export function webhookKey (secret: string): Buffer {
  const problem = webhookKeyProblem(secret)
  if (problem !== null) throw new ConfigError(problem)
  return Buffer.from(secret.replace(/^whsec_/, ''), 'base64')
}

function webhookKeyProblem (secret: string): string | null {
  const text = secret.replace(/^whsec_/, '')
  const key = Buffer.from(text, 'base64')
  if (key.toString('base64') === text && key.length >= MIN_WEBHOOK_KEY_BYTES) return null
  return `PUSH_WEBHOOK_SECRET must be whsec_ and canonical base64 of at least ${MIN_WEBHOOK_KEY_BYTES} bytes`
}

// Variables cloudoreg reads besides its settings, and prefixes of other programs' variables.
const KNOWN = new Set([...Object.keys(ConfigSchema.properties), 'ACG_CONFIG', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE'])

/**
 * Variables that look like a misspelt setting (a few letters away from one): a typo would
 * otherwise leave the setting at its default without a word.
 */
export function misspeltSettings (env: NodeJS.ProcessEnv = process.env): string[] {
  const names = [...KNOWN]
  const warnings: string[] = []
  for (const variable of Object.keys(env)) {
    if (KNOWN.has(variable) || !/^[A-Z][A-Z0-9_]*$/.test(variable)) continue
    const allowed = Math.min(3, Math.floor(variable.length / 4))
    const near = closest(variable, names)
    if (allowed > 0 && distance(variable, near) <= allowed) warnings.push(`${variable} is not a setting of cloudoreg and is ignored; did you mean ${near}?`)
  }
  return warnings
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

/**
 * Whether the push route is served. In direct Kafka mode it is off unless a push credential is
 * configured: the consumer is the way events come in, and an open route beside it would only be a
 * way in for forged ones.
 */
export function pushRouteServed (config: Config): boolean {
  return !config.KAFKA_CONSUME || !pushIsOpen(config)
}

/** Production refuses to start half-configured rather than silently store events for ever. */
export function assertProductionReady (config: Config): void {
  if (config.NODE_ENV !== 'production') return
  const problems: string[] = []
  const missing = missingUpstreamSettings(config)
  if (!config.DATABASE_URL) missing.push('DATABASE_URL')
  // Operator routes can replay and re-verify anything: only their own token opens them.
  if (!config.INTERNAL_TOKEN) missing.push('INTERNAL_TOKEN')
  if (missing.length > 0) problems.push(`NODE_ENV=production needs ${missing.join(', ')}`)
  if (pushRouteServed(config) && pushIsOpen(config) && config.PUSH_AUTH !== 'none') {
    problems.push('NODE_ENV=production needs push authentication: PUSH_TOKEN or PUSH_WEBHOOK_SECRET, ' +
      'or PUSH_AUTH=none when a network policy protects the push route (Knative sends no credential)')
  }
  if (problems.length > 0) throw new ConfigError(problems)
}
