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
