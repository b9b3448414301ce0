import { Type, type TSchema } from '@sinclair/typebox'

/** `limit` and `offset` as every list of this service takes them. */
export const PageQuery = {
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100, examples: [100] }),
  offset: Type.Integer({ minimum: 0, maximum: 2147483647, default: 0, examples: [0] })
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

/** The meta and links of one page; `extra` is the rest of the query string, kept on every link. */
export function pageOf (path: string, count: number, limit: number, offset: number, extra: Record<string, string | undefined> = {}): {
  meta: { count: number, limit: number, offset: number }
  links: { first: string, last: string, next: string | null, previous: string | null }
} {
  const rest = Object.entries(extra).filter(([, v]) => v !== undefined).map(([k, v]) => `&${k}=${encodeURIComponent(v!)}`).join('')
  const link = (o: number): string => `${path}?limit=${limit}&offset=${o}${rest}`
  const lastOffset = count === 0 ? 0 : Math.floor((count - 1) / limit) * limit
  return {
    meta: { count, limit, offset },
    links: {
      first: link(0),
      last: link(lastOffset),
      next: offset + limit < count ? link(offset + limit) : null,
      previous: offset > 0 ? link(Math.max(0, offset - limit)) : null
    }
  }
}
