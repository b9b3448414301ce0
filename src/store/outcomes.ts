import type pg from 'pg'
import type { TraceContext } from '../tracing/context.js'
import { attemptValues, insertAttempt, type AttemptWrite } from './attempts.js'
import type { StatusWrite } from './outbox.js'
import type { AuditWrite, RegistrationWrite, Tombstone } from './registrations.js'

/** What handling one event decided. Written in one statement with the event's end. */
export interface Outcome {
  /** Short, stored with the event: why it ended this way. */
  note: string
  registration?: RegistrationWrite
  status?: StatusWrite
  /** The application was destroyed: a late create must never map it again. */
  tombstone?: Tombstone
  /** A line for the registration org's history (e.g. another org's event refused); `eventId` is filled in. */
  audit?: Omit<AuditWrite, 'eventId'>
  /** The STS RoleSessionName the event's verification used (the customer's CloudTrail shows it). */
  roleSessionName?: string
}

export interface EventEnd {
  eventId: number
  /** The lease this replica must still hold on the event's key for the outcome to count. */
  leaseKey: string
  leaseOwner: string
  orgId: string
  accountNumber: string | null
  attempts: number
  state: 'done' | 'ignored' | 'dead'
  /** The source the event concerned, when known: kept with the event so that its source's history finds it. */
  sourceId: string | null
  /** Stored with the status, so that its message continues the event's trace. */
  trace: TraceContext
  /** The attempt that ended it, recorded by the same statement. */
  attempt?: AttemptWrite
}

/** The event's key is leased to another replica now, or the event already ended there: nothing was written. */
export class LeaseLostError extends Error {
  code = 'CLOUDOREG_LEASE_LOST'
}

// One statement, one round trip: every write hangs off `ended`, the inbox row's end, which happens only
// while the lease row is ours (locked `for share`, so a replica taking the key over waits for this
// commit and then sees the event ended) and the event is still pending. Without `ended` no part writes.
// Data-modifying CTEs run whether or not the final select reads them, hence the `where exists` in each.
const LEASE = `lease as materialized (
  select 1 from source_leases where queue_key = $1 and owner = $2 for share
), ended as (
  update inbox set state = $4, outcome = $5, attempts = $6, finished_at = now(), source_id = coalesce(source_id, $7::text),
    role_session_name = $8::text
  where id = $3 and state = 'pending' and exists (select 1 from lease)
  returning id, lane
)`

const REGISTRATION = (p: number): string => `registration as (
  insert into registrations (application_id, source_id, authentication_id, org_id, account_number, aws_account_id, role_arn,
     state, mapped, last_error_code, last_error_message, attempts, last_event_id, verified_at, failed_step, upstream_code, external_id, checked_at)
  select $${p}::text, $${p + 1}::text, $${p + 2}::text, $${p + 3}::text, $${p + 4}::text, $${p + 5}::text, $${p + 6}::text,
     $${p + 7}::text, $${p + 8}::boolean, $${p + 9}::text, $${p + 10}::text, $${p + 11}::integer, ended.id,
     case when $${p + 12}::boolean then now() end, $${p + 13}::text, $${p + 14}::text, $${p + 15}::text,
     case when $${p + 16}::boolean then now() end
  from ended
  on conflict (application_id) do update set
    source_id = excluded.source_id, authentication_id = excluded.authentication_id, org_id = excluded.org_id,
    account_number = excluded.account_number, aws_account_id = excluded.aws_account_id, role_arn = excluded.role_arn,
    state = excluded.state, mapped = excluded.mapped, last_error_code = excluded.last_error_code,
    last_error_message = excluded.last_error_message, attempts = excluded.attempts, last_event_id = excluded.last_event_id,
    updated_at = now(), verified_at = coalesce(excluded.verified_at, registrations.verified_at),
    failed_step = excluded.failed_step, upstream_code = excluded.upstream_code, external_id = excluded.external_id,
    checked_at = coalesce(excluded.checked_at, registrations.checked_at)
)`

// The status takes the event's lane: the relay sends by lane, so a customer's status passes a wave of re-checks'.
const STATUS = (p: number): string => `status as (
  insert into status_outbox (application_id, org_id, account_number, status, error, traceparent, tracestate, lane)
  select $${p}::text, $${p + 1}::text, $${p + 2}::text, $${p + 3}::text, $${p + 4}::text, $${p + 5}::text, $${p + 6}::text, ended.lane from ended
)`

const TOMBSTONE = (p: number): string => `tombstone as (
  insert into destroyed_applications (application_id, source_id, org_id)
  select $${p}::text, $${p + 1}::text, $${p + 2}::text from ended
  on conflict do nothing
)`

const AUDIT = (p: number): string => `audit as (
  insert into registration_audit (org_id, application_id, source_id, event_id, action, detail)
  select $${p}::text, $${p + 1}::text, $${p + 2}::text, ended.id, $${p + 3}::text, $${p + 4}::text from ended
)`

const ATTEMPT = (p: number): string => `attempt as (
  ${insertAttempt(p, 'ended.id', 'from ended')}
)`

/** The statement for one combination of parts, and its parameters; named per combination so each is planned once per connection. */
function statement (end: EventEnd, outcome: Outcome): pg.QueryConfig {
  const values: unknown[] = [end.leaseKey, end.leaseOwner, end.eventId, end.state, outcome.note, end.attempts,
    end.sourceId ?? outcome.registration?.sourceId ?? null, outcome.roleSessionName ?? null]
  const parts = [LEASE]
  let name = 'outcome'
  const r = outcome.registration
  if (r) {
    parts.push(REGISTRATION(values.length + 1))
    values.push(r.applicationId, r.sourceId, r.authenticationId, r.orgId, r.accountNumber, r.awsAccountId, r.roleArn,
      r.state, r.mapped, r.lastErrorCode, r.lastErrorMessage, r.attempts, r.verified, r.failedStep, r.upstreamCode, r.externalId, r.checked === true)
    name += '-registration'
  }
  const s = outcome.status
  if (s) {
    parts.push(STATUS(values.length + 1))
    values.push(s.applicationId, end.orgId, end.accountNumber, s.status, s.error, end.trace.traceparent, end.trace.tracestate)
    name += '-status'
  }
  const t = outcome.tombstone
  if (t) {
    parts.push(TOMBSTONE(values.length + 1))
    values.push(t.applicationId, t.sourceId, t.orgId)
    name += '-tombstone'
  }
  const a = outcome.audit
  if (a) {
    parts.push(AUDIT(values.length + 1))
    values.push(a.orgId, a.applicationId, a.sourceId, a.action, a.detail)
    name += '-audit'
  }
  if (end.attempt) {
    parts.push(ATTEMPT(values.length + 1))
    values.push(...attemptValues(end.attempt))
    name += '-attempt'
  }
  return {
    name,
    text: `with ${parts.join(', ')}
select exists (select 1 from lease) as leased, exists (select 1 from ended) as ended`,
    values
  }
}

/** Registration, status outbox row, tombstone, audit line, the attempt and the inbox row's end commit together (one statement) or not at all. */
export async function recordOutcome (pool: pg.Pool, end: EventEnd, outcome: Outcome): Promise<void> {
  const { rows: [row] } = await pool.query<{ leased: boolean, ended: boolean }>(statement(end, outcome))
  if (!row.leased) throw new LeaseLostError(`the lease on ${end.leaseKey} is no longer held by this replica`)
  if (!row.ended) throw new LeaseLostError(`event ${end.eventId} has already ended`)
}
