import { Type, type Static } from '@sinclair/typebox'
import type { DeadLetterFilter } from '../store/index.js'
import { UPSTREAM_TARGETS } from '../upstream/errors.js'

const Upstream = Type.Union(UPSTREAM_TARGETS.map(u => Type.Literal(u)), { description: 'The upstream whose call failed in the last attempt' })

/** The filters of the dead-letter list and of the bulk replay: the same words select the same events. */
export const DeadLetterFilters = {
  error_code: Type.Optional(Type.String({
    minLength: 1,
    maxLength: 200,
    pattern: '^[A-Za-z0-9 ._:-]+$',
    description: 'What the last attempt\'s upstream answered, any case: an HTTP status (`503` or `HTTP 503`), an AWS error code (`Throttling`), a network error (`ECONNREFUSED`)',
    examples: ['503']
  })),
  upstream: Type.Optional(Upstream),
  event_type: Type.Optional(Type.String({ minLength: 1, maxLength: 200, pattern: '^[A-Za-z0-9._-]+$', examples: ['ApplicationAuthentication.create'] })),
  org_id: Type.Optional(Type.String({ pattern: '^[0-9]{1,32}$', examples: ['7654321'] })),
  since: Type.Optional(Type.String({ format: 'date-time', description: 'Dead letters that gave up at or after this time' })),
  until: Type.Optional(Type.String({ format: 'date-time', description: 'Dead letters that gave up before this time' }))
}

type Filters = Static<ReturnType<typeof Type.Object<typeof DeadLetterFilters>>>

/** `HTTP 503` and `503` name the same answer. */
export function filterOf (q: Filters): DeadLetterFilter {
  const code = q.error_code?.trim()
  return {
    errorCode: code === undefined ? undefined : /^http \d{3}$/i.test(code) ? code.slice(5) : code,
    upstream: q.upstream,
    eventType: q.event_type,
    orgId: q.org_id,
    since: q.since === undefined ? undefined : new Date(q.since),
    until: q.until === undefined ? undefined : new Date(q.until)
  }
}

/** The filters as given, to keep on the list's page links and in a task's parameters. */
export function filterParams (q: Filters): Record<string, string | undefined> {
  return { error_code: q.error_code, upstream: q.upstream, event_type: q.event_type, org_id: q.org_id, since: q.since, until: q.until }
}
