import { Type, type Static, type TSchema } from '@sinclair/typebox'

/**
 * Schemas that more than one route uses: at once validation, TypeScript types and OpenAPI.
 * The Problem schema itself is registered by the problem plugin (src/plugins/infrastructure/problem.ts).
 */

/** An error answer, application/problem+json (RFC 9457). */
export const ProblemRef = Type.Unsafe<unknown>({ $ref: 'Problem#' })

export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()])

/** A sources-api source id: decimal digits, as sources-api prints them. */
export const SourceId = Type.String({ pattern: '^[0-9]{1,20}$', description: 'sources-api source id' })

export const SourceParams = Type.Object({ source_id: SourceId })

/**
 * A page offset. Bounded: PostgreSQL's OFFSET is a bigint, and a larger number (query strings are
 * coerced, "1e30" included) would reach it as "1e+30": a 500 instead of a 400.
 */
export const Offset = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0 })

/** `limit` and `offset` as every list of this service takes them. */
export const PageQuery = {
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100, examples: [100] }),
  offset: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0, examples: [0] })
}

/** A page of `item`, shaped like sources-api's lists: meta, links, data. */
export function Page<T extends TSchema> (item: T, description: string) {
  return Type.Object({
    meta: Type.Object({ count: Type.Integer({ description: 'All items, on every page' }), limit: Type.Integer(), offset: Type.Integer() }),
    links: Type.Object({
      first: Type.String(),
      last: Type.String(),
      next: Type.Union([Type.String(), Type.Null()]),
      previous: Type.Union([Type.String(), Type.Null()])
    }),
    data: Type.Array(item)
  }, { description })
}

/** One attempt of an event, as the history and the operator routes show it. */
export const Attempt = Type.Object({
  attempt: Type.Integer({ description: '1 for the first', examples: [3] }),
  started_at: Type.String({ format: 'date-time' }),
  finished_at: Type.String({ format: 'date-time' }),
  duration_ms: Type.Integer({ examples: [812] }),
  result: Type.String({ description: 'retry: it failed and the event was retried later · done: it ended the event · dead: it failed and the event gave up (a dead letter)', examples: ['retry'] }),
  upstream: Nullable(Type.String({ description: 'The upstream whose call failed: sources, sts, rhsm, kafka', examples: ['sts'] })),
  step: Nullable(Type.String({ description: 'The step of the check that was running or failed', examples: ['AssumeRole'] })),
  http_status: Nullable(Type.Integer({ examples: [503] })),
  error_code: Nullable(Type.String({ description: 'What the upstream answered: an AWS error code, `HTTP <status>`, or a network error code', examples: ['Throttling'] })),
  outcome_code: Nullable(Type.String({ description: 'The error code cloudoreg reported for the event, when this attempt decided one', examples: ['CG3002'] })),
  error: Nullable(Type.String({ description: 'The error, in cloudoreg\'s words (never a secret)', examples: ['sts: AssumeRole failed: Throttling'] })),
  replica: Type.String({ description: 'The replica that ran it (its lease owner id: host/pid/random)' })
})

export type AttemptBody = Static<typeof Attempt>
