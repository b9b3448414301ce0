import type pg from 'pg'
import { APP_KEY_PREFIX, SOURCE_KEY_PREFIX } from '../events/keys.js'
import { rowToEvent, type InboxEvent } from './inbox.js'

/** A pending event and the key of the lease that orders it. */
export interface LeasableEvent extends InboxEvent {
  /** The application's key for `source:` events once a registration names it, so they queue behind its events. */
  leaseKey: string
}

export interface Leases {
  /** Identifies this process in `source_leases`. */
  owner: string
  /**
   * The oldest pending events on keys that this replica holds or that nobody
   * holds (never held, released or expired), skipping the ids it already has.
   * Only a read: `take` decides who gets a key.
   */
  candidates: (limit: number, skip: number[]) => Promise<LeasableEvent[]>
  /** Takes or extends leases on these keys; returns the keys now held. */
  take: (keys: string[]) => Promise<Set<string>>
  /** Extends the leases on `active`, releases this replica's others and long-expired ones; returns the active keys still held. */
  renew: (active: string[]) => Promise<Set<string>>
  releaseAll: () => Promise<void>
  /** Drops every replica's leases; only for a database no other live process uses. Returns how many. */
  clearAll: () => Promise<number>
}

const CANDIDATES = `
select i.id, i.event_type, i.queue_key, i.org_id, i.account_number, i.body, i.delivery_id, i.attempts,
       i.next_attempt_at, i.received_at, i.source_id, i.traceparent, i.tracestate, k.lease_key
from inbox i
cross join lateral (
  select case
    when i.queue_key is null then 'event:' || i.id
    when starts_with(i.queue_key, $4) then coalesce(
      (select $5 || r.application_id from registrations r
       where r.org_id = i.org_id and r.source_id = substr(i.queue_key, length($4) + 1) order by r.updated_at desc limit 1),
      i.queue_key)
    else i.queue_key
  end as lease_key
) k
left join source_leases l on l.queue_key = k.lease_key
where i.state = 'pending' and not (i.id = any($1::bigint[]))
  and (l.owner is null or l.owner = $2 or l.expires_at <= now())
order by i.id
limit $3`

export function createLeases (pool: pg.Pool, owner: string, leaseMs: number): Leases {
  return {
    owner,
    async candidates (limit, skip) {
      const { rows } = await pool.query({ name: 'lease-candidates', text: CANDIDATES, values: [skip, owner, limit, SOURCE_KEY_PREFIX, APP_KEY_PREFIX] })
      return rows.map(r => ({ ...rowToEvent(r), leaseKey: r.lease_key }))
    },
    async take (keys) {
      if (keys.length === 0) return new Set()
      // Concurrent takers of one key serialise on its row; the loser's WHERE then sees a live lease and gets nothing.
      const { rows } = await pool.query<{ queue_key: string }>(
        `insert into source_leases (queue_key, owner, expires_at)
         select unnest($1::text[]), $2, now() + $3 * interval '1 millisecond'
         on conflict (queue_key) do update set owner = excluded.owner, expires_at = excluded.expires_at
           where source_leases.owner = excluded.owner or source_leases.expires_at <= now()
         returning queue_key`, [keys, owner, leaseMs])
      return new Set(rows.map(r => r.queue_key))
    },
    async renew (active) {
      const { rows } = await pool.query<{ queue_key: string }>(
        `with kept as (
           update source_leases set expires_at = now() + $3 * interval '1 millisecond'
           where owner = $1 and queue_key = any($2::text[]) returning queue_key
         ), released as (
           delete from source_leases where owner = $1 and not (queue_key = any($2::text[]))
         ), forgotten as (
           -- A dead replica's leases on keys nobody needed since: only clutter now.
           delete from source_leases where expires_at < now() - $3 * interval '1 millisecond'
         )
         select queue_key from kept`, [owner, active, leaseMs])
      return new Set(rows.map(r => r.queue_key))
    },
    async releaseAll () {
      await pool.query('delete from source_leases where owner = $1', [owner])
    },
    async clearAll () {
      return (await pool.query('delete from source_leases')).rowCount ?? 0
    }
  }
}
