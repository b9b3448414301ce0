import { Type, type TSchema } from '@sinclair/typebox'

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
