import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ClowderConfig, Endpoint } from 'app-common-js'
import { ConfigError } from './config-error.js'

// The file is read here rather than through app-common-js 2.2.4's `new Config()`, whose types this
// module still uses. That class cannot do the job cleanly:
// - it reads process.env.ACG_CONFIG, not the environment object loadConfig is given;
// - when the file is missing it prints to the console and carries on with an empty config, so a
//   mistyped path would start a service that silently ignores the platform's settings;
// - invalid JSON comes out as a bare SyntaxError naming no file, and V8 quotes the text around the
//   error in that message: part of a file full of passwords would reach the log;
// - its getRdsCa() writes the database CA world-readable (0644).
// Its lookup helpers (KafkaTopics, DependencyEndpoints) are one-line searches, done below.

/** A cdappconfig.json as Clowder writes it: every section may be absent when the ClowdApp does not ask for it. */
export type ClowderFile = DeepPartial<ClowderConfig> & { publicPort?: number, privatePort?: number }
type DeepPartial<T> = T extends Array<infer U> ? Array<DeepPartial<U>> : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T

export const EVENT_TOPIC = 'platform.sources.event-stream'
export const STATUS_TOPIC = 'platform.sources.status'
export const SOURCES_API_APP = 'sources-api'

export interface ClowderSettings {
  /** Settings under cloudoreg's own variable names. */
  settings: Record<string, string>
  /** PEM text for the settings that name a file (KAFKA_CA_PATH, DATABASE_CA_PATH); written only if used. */
  pem: Record<string, string>
}

/** Maps a parsed cdappconfig.json onto cloudoreg's settings; pure, so that each field can be tested. */
export function clowderSettings (c: ClowderFile): ClowderSettings {
  const settings: Record<string, string> = {}
  const pem: Record<string, string> = {}
  const set = (key: string, value: string | number | undefined): void => {
    if (value !== undefined && value !== '') settings[key] = String(value)
  }

  set('PORT', c.webPort ?? c.publicPort)
  set('METRICS_PORT', c.metricsPort)
  // The private web service is where in-cluster callers, the bridge among them, reach the app.
  set('PUSH_PORT', c.privatePort)

  const brokers = (c.kafka?.brokers ?? []).filter(b => b.hostname)
  if (brokers.length > 0) {
    set('KAFKA_BROKERS', brokers.map(b => `${b.hostname}:${b.port ?? 9092}`).join(','))
    // One cluster per app: every broker carries the same security, so the first one speaks for all.
    const first = brokers[0]
    const sasl = first.sasl
    // Older Clowder versions put securityProtocol inside the sasl stanza.
    const protocol = (first.securityProtocol || sasl?.securityProtocol || '').toUpperCase()
    const tls = protocol === 'SSL' || protocol === 'SASL_SSL'
    if (tls) set('KAFKA_SSL', 'true')
    if (sasl?.username) {
      set('KAFKA_SASL_MECHANISM', sasl.saslMechanism)
      set('KAFKA_SASL_USERNAME', sasl.username)
      set('KAFKA_SASL_PASSWORD', sasl.password)
    }
    // A CA turns TLS on in kafkaConnection, so a broker Clowder says is plaintext gets none.
    if (first.cacert && (tls || protocol === '')) pem.KAFKA_CA_PATH = first.cacert
  }
  for (const topic of c.kafka?.topics ?? []) {
    if (topic.requestedName === EVENT_TOPIC) set('SOURCES_EVENT_TOPIC', topic.name)
    if (topic.requestedName === STATUS_TOPIC) set('SOURCES_STATUS_TOPIC', topic.name)
  }

  const db = c.database
  if (db?.hostname && db.name) {
    const auth = db.username ? encodeURIComponent(db.username) + (db.password ? ':' + encodeURIComponent(db.password) : '') + '@' : ''
    const query = db.sslMode ? `?sslmode=${encodeURIComponent(db.sslMode)}` : ''
    set('DATABASE_URL', `postgresql://${auth}${urlHost(db.hostname)}:${db.port ?? 5432}/${encodeURIComponent(db.name)}${query}`)
    if (db.rdsCa) pem.DATABASE_CA_PATH = db.rdsCa
  }

  set('SOURCES_API_URL', sourcesApiUrl(c))
  return { settings, pem }
}

/**
 * sources-api serves its REST API, internal PSK routes included, on its public web service (the
 * `svc` deployment), so a public endpoint is preferred to a private one, and the one named `svc` to
 * the app's others. The plain port is preferred to the TLS one: Clowder's TLS ports present a
 * certificate from the cluster's service CA, which Node does not trust unless the deployment sets
 * NODE_EXTRA_CA_CERTS; an endpoint with only a TLS port is used over https all the same.
 */
function sourcesApiUrl (c: ClowderFile): string | undefined {
  for (const list of [c.endpoints, c.privateEndpoints]) {
    const candidates = (list ?? []).filter(e => e.app === SOURCES_API_APP && e.hostname)
    const endpoint = candidates.find(e => e.name === 'svc') ?? candidates[0]
    if (endpoint !== undefined) return endpointUrl(endpoint)
  }
  return undefined
}

function endpointUrl (e: DeepPartial<Endpoint>): string | undefined {
  if (e.port) return `http://${urlHost(e.hostname!)}:${e.port}`
  if (e.tlsPort) return `https://${urlHost(e.hostname!)}:${e.tlsPort}`
  return undefined
}

function urlHost (hostname: string): string {
  return hostname.includes(':') && !hostname.startsWith('[') ? `[${hostname}]` : hostname
}

/** Reads cdappconfig.json; a missing or broken file stops start-up, naming the file. */
export function readClowderFile (path: string): ClowderFile {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new ConfigError(`Invalid configuration: ACG_CONFIG=${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    // Only the position: V8's message quotes the text around it, which may be a password.
    const position = /position (\d+)/.exec((err as Error).message)?.[1]
    throw new ConfigError(`Invalid configuration: ACG_CONFIG=${path} is not valid JSON${position === undefined ? '' : ` (at character ${position})`}`)
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(`Invalid configuration: ACG_CONFIG=${path} does not hold a JSON object`)
  }
  return parsed as ClowderFile
}

/**
 * The settings Clowder gives, minus those `env` already sets (a non-empty variable wins, key by
 * key). CA files are written only for keys the environment leaves to Clowder.
 */
export function clowderEnv (path: string, env: NodeJS.ProcessEnv): Record<string, string> {
  let mapped: ClowderSettings
  try {
    mapped = clowderSettings(readClowderFile(path))
  } catch (err) {
    if (err instanceof ConfigError) throw err
    // A field of the wrong shape (a string where a list belongs, ...).
    throw new ConfigError(`Invalid configuration: ACG_CONFIG=${path} does not look like a Clowder cdappconfig.json (${(err as Error).message})`)
  }
  const unset = (key: string): boolean => env[key] === undefined || env[key] === ''
  const out: Record<string, string> = {}
  for (const [key, value] of Object.entries(mapped.settings)) if (unset(key)) out[key] = value
  const files = Object.entries(mapped.pem).filter(([key]) => unset(key))
  if (files.length > 0) {
    const dir = privateTempDir()
    for (const [key, text] of files) {
      const file = join(dir, `${key.toLowerCase().replace(/_path$/, '')}.pem`)
      writeFileSync(file, text, { mode: 0o600, flag: 'wx' })
      out[key] = file
    }
  }
  return out
}

const tempDirs: string[] = []

// mkdtemp makes an unguessable 0700 directory: no other user can plant or swap the file we then trust.
function privateTempDir (): string {
  const dir = mkdtempSync(join(tmpdir(), 'cloudoreg-clowder-'))
  if (tempDirs.length === 0) {
    process.once('exit', () => { for (const d of tempDirs) rmSync(d, { recursive: true, force: true }) })
  }
  tempDirs.push(dir)
  return dir
}
