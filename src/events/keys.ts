/**
 * Ordering keys: every event of one cloud-meter application runs in order on `app:<id>`; an event that
 * names only a source waits on `source:<id>` until a registration says which application it is.
 * The lease query in src/store/leases.ts resolves `source:` keys with these same prefixes.
 */
export const APP_KEY_PREFIX = 'app:'
export const SOURCE_KEY_PREFIX = 'source:'

export function appKey (applicationId: string): string {
  return APP_KEY_PREFIX + applicationId
}

export function sourceKey (sourceId: string): string {
  return SOURCE_KEY_PREFIX + sourceId
}

/** An id as sources-api sends it (a number, or digits), else null: event bodies are hostile. */
export function numericId (value: unknown): string | null {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return String(value)
  if (typeof value === 'string' && /^[0-9]{1,20}$/.test(value)) return value
  return null
}

/**
 * The ordering key of DESIGN.md: the cloud-meter application, since a source has
 * at most one application of a type. Events that name only a source get the
 * source's key; null means no handler needs ordering for it.
 */
export function queueKeyFor (eventType: string, body: Record<string, unknown>): string | null {
  const [resource] = eventType.split('.')
  let app: string | null = null
  switch (resource) {
    case 'ApplicationAuthentication':
      app = numericId(body.application_id)
      break
    case 'Application':
      app = numericId(body.id)
      break
    case 'Authentication':
      app = body.resource_type === 'Application' ? numericId(body.resource_id) : null
      break
    case 'Source': {
      const source = numericId(body.id)
      return source === null ? null : sourceKey(source)
    }
  }
  return app === null ? null : appKey(app)
}

/**
 * The source an event names by itself, so that the status API can show it waiting before
 * anything was read from sources-api; null when only sources-api can tell (e.g. a create,
 * which names the application). The pipeline records the source once it learns it.
 */
export function sourceIdFor (eventType: string, body: Record<string, unknown>): string | null {
  const [resource] = eventType.split('.')
  if (resource === 'Source') return numericId(body.id)
  if (resource === 'Application' || resource === 'cloudoreg') return numericId(body.source_id)
  return null
}

/** The application an `app:` key names; null for any other key. */
export function applicationOfKey (key: string | null): string | null {
  return key?.startsWith(APP_KEY_PREFIX) === true ? key.slice(APP_KEY_PREFIX.length) : null
}
