import type pg from 'pg'
import { withTransaction } from './transaction.js'

export type RegistrationState = 'pending' | 'registered' | 'unavailable' | 'paused' | 'removed'
export const REGISTRATION_STATES: RegistrationState[] = ['pending', 'registered', 'unavailable', 'paused', 'removed']

export interface Registration {
  applicationId: string
  sourceId: string
  authenticationId: string | null
  orgId: string
  accountNumber: string | null
  awsAccountId: string | null
  roleArn: string | null
  state: RegistrationState
  mapped: boolean
  lastErrorCode: string | null
  lastErrorMessage: string | null
  attempts: number
  /** Where the last check stopped (a step of CHECK_STEPS), and what the upstream answered there, as received. */
  failedStep: CheckStep | null
  upstreamCode: string | null
  /** The sts:ExternalId the customer's trust policy must require (sources-api's extra.external_id). */
  externalId: string | null
  createdAt: Date
  updatedAt: Date
  verifiedAt: Date | null
  /** When a check last reached a verdict, either way. */
  checkedAt: Date | null
}

/** The steps of a check, in order; `duplicates` is cloudoreg's own rule between reading and AWS. */
export const CHECK_STEPS = ['read application', 'read authentication', 'duplicates', 'AssumeRole', 'GetCallerIdentity', 'RHSM'] as const
export type CheckStep = typeof CHECK_STEPS[number]

/** What a handler decided about a registration; `verified` stamps verified_at, `checked` checked_at. */
export type RegistrationWrite = Omit<Registration, 'createdAt' | 'updatedAt' | 'verifiedAt' | 'checkedAt'> & { verified: boolean, checked?: boolean }

export const REGISTRATION_COLUMNS = `application_id, source_id, authentication_id, org_id, account_number, aws_account_id, role_arn, state, mapped,
  last_error_code, last_error_message, attempts, failed_step, upstream_code, external_id, created_at, updated_at, verified_at, checked_at`

export function toRegistration (r: Record<string, any>): Registration {
  return {
    applicationId: r.application_id,
    sourceId: r.source_id,
    authenticationId: r.authentication_id,
    orgId: r.org_id,
    accountNumber: r.account_number,
    awsAccountId: r.aws_account_id,
    roleArn: r.role_arn,
    state: r.state,
    mapped: r.mapped,
    lastErrorCode: r.last_error_code,
    lastErrorMessage: r.last_error_message,
    attempts: r.attempts,
    failedStep: r.failed_step,
    upstreamCode: r.upstream_code,
    externalId: r.external_id,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    verifiedAt: r.verified_at,
    checkedAt: r.checked_at
  }
}

// One row whatever exists: the tombstone flag, and the registration's columns (null without one).
const BY_APPLICATION_WITH_TOMBSTONE = `
select exists (select 1 from destroyed_applications where application_id = $1 and org_id = $2) as destroyed, r.*
from (select 1) one
left join (select ${REGISTRATION_COLUMNS} from registrations where application_id = $1) r on true`

const CONFLICT = `
select case when org_id <> $2 then 'CR4001' else 'CG1001' end as code from registrations
where application_id <> $1 and state in ('registered', 'paused')
  and ((org_id <> $2 and aws_account_id = $3) or (org_id = $2 and role_arn = $4))
order by code desc limit 1`

export interface RegistrationQuery {
  orgId: string
  state?: RegistrationState
  limit: number
  offset: number
}

export interface Tombstone {
  applicationId: string
  sourceId: string | null
  orgId: string
}

/**
 * A line of a registration's history that is not one of its org's events: another org's event
 * refused on it, a tombstone lifted by an operator. Written with what it records, in one transaction.
 */
export interface AuditWrite {
  /** The registration's org: the one that sees the line. */
  orgId: string
  applicationId: string
  sourceId: string | null
  eventId: number | null
  action: 'refused' | 'tombstone_lifted'
  detail: string
}

export interface AuditRecord extends AuditWrite {
  at: Date
}

export async function insertAudit (db: pg.ClientBase, a: AuditWrite): Promise<void> {
  await db.query(
    'insert into registration_audit (org_id, application_id, source_id, event_id, action, detail) values ($1, $2, $3, $4, $5, $6)',
    [a.orgId, a.applicationId, a.sourceId, a.eventId, a.action, a.detail])
}

/** Who else holds this AWS account or role: the duplicate rules of the lifecycle. */
export type Conflict = 'CR4001' | 'CG1001' | null

export interface Registrations {
  findByApplication: (applicationId: string) => Promise<Registration | null>
  /** The application's registration, and whether the org destroyed it (a tombstone), in one query. */
  findApplication: (applicationId: string, orgId: string) => Promise<{ destroyed: boolean, registration: Registration | null }>
  findConflict: (r: { applicationId: string, orgId: string, awsAccountId: string, roleArn: string }) => Promise<Conflict>
  findBySource: (orgId: string, sourceId: string) => Promise<Registration | null>
  /** For operators, who act across orgs. */
  findBySourceInAnyOrg: (sourceId: string) => Promise<Registration | null>
  list: (q: RegistrationQuery) => Promise<{ count: number, data: Registration[] }>
  /** The audit lines of an org's application, oldest first. */
  auditOf: (orgId: string, applicationId: string, limit: number) => Promise<AuditRecord[]>
  /**
   * Operators: removes the application's tombstones (of one org, or of every org), each with an
   * audit line in its org's history; returns the tombstones lifted.
   */
  liftTombstones: (applicationId: string, orgId: string | undefined, detail: string) => Promise<Tombstone[]>
  /**
   * Takes the source's one check per `intervalS` seconds (shared by replicas); 0 when taken, else
   * the seconds until the next may be taken.
   */
  claimCheck: (orgId: string, sourceId: string, intervalS: number) => Promise<number>
  /** When a check of the source was last asked for, if ever. */
  lastCheckRequest: (orgId: string, sourceId: string) => Promise<Date | null>
}

export function createRegistrations (pool: pg.Pool): Registrations {
  return {
    async findByApplication (applicationId) {
      const { rows } = await pool.query({ name: 'registrations-by-application', text: `select ${REGISTRATION_COLUMNS} from registrations where application_id = $1`, values: [applicationId] })
      return rows.length > 0 ? toRegistration(rows[0]) : null
    },
    async findApplication (applicationId, orgId) {
      const { rows: [row] } = await pool.query({ name: 'registrations-by-application-with-tombstone', text: BY_APPLICATION_WITH_TOMBSTONE, values: [applicationId, orgId] })
      return { destroyed: row.destroyed, registration: row.application_id === null ? null : toRegistration(row) }
    },
    async findConflict ({ applicationId, orgId, awsAccountId, roleArn }) {
      const { rows } = await pool.query<{ code: 'CR4001' | 'CG1001' }>({ name: 'registrations-conflict', text: CONFLICT, values: [applicationId, orgId, awsAccountId, roleArn] })
      return rows[0]?.code ?? null
    },
    async findBySource (orgId, sourceId) {
      // A source has one cloud-meter application; should history hold more, the latest speaks for it.
      const { rows } = await pool.query(
        `select ${REGISTRATION_COLUMNS} from registrations where org_id = $1 and source_id = $2 order by updated_at desc limit 1`, [orgId, sourceId])
      return rows.length > 0 ? toRegistration(rows[0]) : null
    },
    async findBySourceInAnyOrg (sourceId) {
      const { rows } = await pool.query(`select ${REGISTRATION_COLUMNS} from registrations where source_id = $1 order by updated_at desc limit 1`, [sourceId])
      return rows.length > 0 ? toRegistration(rows[0]) : null
    },
    async claimCheck (orgId, sourceId, intervalS) {
      const { rows } = await pool.query<{ wait: number }>(
        `with taken as (
           insert into check_requests (org_id, source_id) values ($1, $2)
           on conflict (org_id, source_id) do update set requested_at = now()
             where check_requests.requested_at <= now() - $3 * interval '1 second'
           returning 0 as wait
         )
         select wait from taken
         union all
         select greatest(1, ceil(extract(epoch from requested_at + $3 * interval '1 second' - now())))::int
         from check_requests where org_id = $1 and source_id = $2 and not exists (select 1 from taken)`, [orgId, sourceId, intervalS])
      return rows[0].wait
    },
    async lastCheckRequest (orgId, sourceId) {
      const { rows } = await pool.query('select requested_at from check_requests where org_id = $1 and source_id = $2', [orgId, sourceId])
      return rows[0]?.requested_at ?? null
    },
    async list ({ orgId, state, limit, offset }) {
      const where = state === undefined ? 'org_id = $1' : 'org_id = $1 and state = $2'
      const params: unknown[] = state === undefined ? [orgId] : [orgId, state]
      const count = await pool.query<{ count: string }>(`select count(*) from registrations where ${where}`, params)
      const { rows } = await pool.query(
        `select ${REGISTRATION_COLUMNS} from registrations where ${where}
         order by length(source_id), source_id, application_id limit $${params.length + 1} offset $${params.length + 2}`,
        [...params, limit, offset])
      return { count: Number(count.rows[0].count), data: rows.map(toRegistration) }
    },
    async auditOf (orgId, applicationId, limit) {
      const { rows } = await pool.query(
        `select org_id, application_id, source_id, event_id, action, detail, at from registration_audit
         where org_id = $1 and application_id = $2 order by id limit $3`, [orgId, applicationId, limit])
      return rows.map(r => ({
        orgId: r.org_id,
        applicationId: r.application_id,
        sourceId: r.source_id,
        eventId: r.event_id === null ? null : Number(r.event_id),
        action: r.action,
        detail: r.detail,
        at: r.at
      }))
    },
    async liftTombstones (applicationId, orgId, detail) {
      return await withTransaction(pool, async client => {
        const { rows } = await client.query<{ application_id: string, source_id: string | null, org_id: string }>(
          'delete from destroyed_applications where application_id = $1 and ($2::text is null or org_id = $2) returning application_id, source_id, org_id',
          [applicationId, orgId ?? null])
        const lifted = rows.map(r => ({ applicationId: r.application_id, sourceId: r.source_id, orgId: r.org_id }))
        for (const t of lifted) await insertAudit(client, { ...t, eventId: null, action: 'tombstone_lifted', detail })
        return lifted
      })
    }
  }
}
