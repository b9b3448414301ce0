import type { Config } from './config.js'
import { ConfigError } from './config-error.js'
import { DataDirInUseError } from './store/data-dir-lock.js'

type SystemError = Error & { code?: string, port?: number, address?: string, syscall?: string }

// PostgreSQL's SQLSTATEs for a login or database that is not there.
const DATABASE_REFUSALS: Record<string, string> = {
  '28P01': 'the password was refused',
  28000: 'the user may not connect',
  '3D000': 'the database does not exist'
}

/** The port setting a busy port belongs to (several may share a value; name them all). */
function portSettings (config: Config, port: number | undefined): string {
  const settings = (['PORT', 'PUSH_PORT', 'METRICS_PORT'] as const).filter(name => config[name] === port)
  return settings.length > 0 ? settings.map(name => `${name}=${port}`).join(', ') : `port ${port}`
}

/**
 * Start-up failures an operator fixes by changing a setting, as one line per problem naming it;
 * undefined for anything else (which keeps its stack trace).
 */
export function startupProblems (err: unknown, config?: Config): string[] | undefined {
  if (err instanceof ConfigError) return err.problems
  if (err instanceof DataDirInUseError) return [err.message]
  const e = err as SystemError
  if (config === undefined) return undefined
  if (e.code === 'EADDRINUSE' || e.code === 'EACCES') {
    const why = e.code === 'EADDRINUSE' ? 'is in use by another process' : 'needs privileges this process lacks'
    return [`${portSettings(config, e.port)} ${why} (on ${config.HOST}); set it to a free port`]
  }
  if (config.DATABASE_URL !== undefined) {
    // The URL holds a password: name the host, never quote the URL.
    let host = 'the database'
    try { host = new URL(config.DATABASE_URL).host } catch {}
    const refusal = e.code !== undefined ? DATABASE_REFUSALS[e.code] : undefined
    if (refusal !== undefined) return [`DATABASE_URL: ${host} answers, but ${refusal}; correct DATABASE_URL`]
    if (e.code !== undefined && /^E[A-Z]+$/.test(e.code)) return [`DATABASE_URL: cannot reach ${host} (${e.code}); check DATABASE_URL and that the database runs`]
  }
  if (/could not bind|Address already in use/.test(e.message ?? '')) {
    return [`EMBEDDED_PG_PORT=${config.EMBEDDED_PG_PORT} is in use by another process; set EMBEDDED_PG_PORT to a free port`]
  }
  return undefined
}
