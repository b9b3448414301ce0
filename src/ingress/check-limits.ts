export interface CheckLimits {
  /** Counts a check of the org: null when it may go on, else the seconds until the window turns. */
  take: (orgId: string) => number | null
}

const WINDOW_MS = 60_000

/**
 * Availability checks per org and overall, in one-minute windows, in this replica. The caller is
 * not authenticated (sources-api sends no credential), so this bounds what a flood can cost: the
 * per-org map holds only orgs that were admitted, hence at most `total` entries.
 */
export function createCheckLimits (perOrg: number, total: number, now: () => number = Date.now): CheckLimits {
  let windowStart = 0
  let all = 0
  const byOrg = new Map<string, number>()
  return {
    take (orgId) {
      const at = now()
      if (at - windowStart >= WINDOW_MS) {
        windowStart = at
        all = 0
        byOrg.clear()
      }
      const n = byOrg.get(orgId) ?? 0
      if (all >= total || n >= perOrg) return Math.max(1, Math.ceil((windowStart + WINDOW_MS - at) / 1000))
      byOrg.set(orgId, n + 1)
      all++
      return null
    }
  }
}
