import type pg from 'pg'
import { APP_KEY_PREFIX, SOURCE_KEY_PREFIX } from '../events/keys.js'
import { LANES, type Lane } from '../events/lanes.js'
import { rowToEvent, type InboxEvent } from './inbox.js'

/** A pending event and the key of the lease that orders it. */
export interface LeasableEvent extends InboxEvent {
  /** The application's key for `source:` events once a registration names it, so they queue behind its events. */
  leaseKey: string
  /** The key's lane when it was read: the first lane of any of its pending events (a create waiting behind a re-check lends it its lane). */
  keyLane: Lane
}

export interface Leases {
  /** Identifies this process in `source_leases`. */
  owner: string
  /**
   * Pending events on keys that this replica holds or that nobody holds (never held, released or
   * expired), skipping the ids it already has. Keys are chosen by lane, then in turns between orgs
   * (each org's oldest key, then each org's second oldest...), then by age; the rows come in that
   * order, each key's events together and in id order, so that queueing them keeps every key's
   * order. At most `limit` events, of keys whose lane is at most `maxLane`.
   * Only a read: `take` decides who gets a key.
   */
  candidates: (limit: number, skip: number[], maxLane?: Lane) => Promise<LeasableEvent[]>
  /** Takes or extends leases on these keys; returns the keys now held. */
  take: (keys: string[]) => Promise<Set<string>>
  /** Extends the leases on `active`, releases this replica's others and long-expired ones; returns the active keys still held. */
  renew: (active: string[]) => Promise<Set<string>>
  releaseAll: () => Promise<void>
  /** Drops every replica's leases; only for a database no other live process uses. Returns how many. */
  clearAll: () => Promise<number>
}

// Grouped per queue key first (few rows per key), resolved to lease keys per group, then chosen.
const CANDIDATES = `
with held as (select unnest($1::bigint[]) as id),
pending as (
  select coalesce(i.queue_key, 'event:' || i.id) as qk, i.queue_key, i.org_id, min(i.lane) as lane, min(i.id) as first_id
  from inbox i
  where i.state = 'pending' and not exists (select 1 from held h where h.id = i.id)
  group by 1, 2, 3
), keyed as (
  select p.*, case
    when starts_with(p.qk, $4) then coalesce(
      (select $5 || r.application_id from registrations r
       where r.org_id = p.org_id and r.source_id = substr(p.qk, length($4) + 1) order by r.updated_at desc limit 1),
      p.qk)
    else p.qk
  end as lease_key
  from pending p
), keys as (
  select k.lease_key, min(k.lane) as lane, min(k.first_id) as first_id, (array_agg(k.org_id order by k.first_id))[1] as org_id
  from keyed k left join source_leases l on l.queue_key = k.lease_key
  where l.owner is null or l.owner = $2 or l.expires_at <= now()
  group by k.lease_key
  having min(k.lane) <= $6
), chosen as (
  select lease_key, lane, first_id, row_number() over (partition by lane, org_id order by first_id) as turn
  from keys
  order by lane, turn, first_id
  limit $3
)
select i.id, i.event_type, i.queue_key, i.org_id, i.account_number, i.body, i.delivery_id, i.attempts,
       i.next_attempt_at, i.received_at, i.source_id, i.traceparent, i.tracestate, i.lane,
       c.lease_key, c.lane as key_lane
from chosen c
join keyed k on k.lease_key = c.lease_key
cross join lateral (
  select * from inbox x where k.queue_key is not null and x.queue_key = k.queue_key and x.org_id = k.org_id and x.state = 'pending'
  union all
  select * from inbox x where k.queue_key is null and x.id = k.first_id
) i
where not exists (select 1 from held h where h.id = i.id)
order by c.lane, c.turn, c.first_id, i.id
limit $3`

export function createLeases (pool: pg.Pool, owner: string, leaseMs: number): Leases {
  return {
    owner,
    async candidates (limit, skip, maxLane = LANES.bulk) {
      const { rows } = await pool.query({ name: 'lease-candidates', text: CANDIDATES, values: [skip, owner, limit, SOURCE_KEY_PREFIX, APP_KEY_PREFIX, maxLane] })
      return rows.map(r => ({ ...rowToEvent(r), leaseKey: r.lease_key, keyLane: r.key_lane }))
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
