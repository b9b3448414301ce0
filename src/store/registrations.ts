import type pg from 'pg'

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
  createdAt: Date
  updatedAt: Date
  verifiedAt: Date | null
}

/** What a handler decided about a registration; `verified` stamps verified_at. */
export type RegistrationWrite = Omit<Registration, 'createdAt' | 'updatedAt' | 'verifiedAt'> & { verified: boolean }

const COLUMNS = `application_id, source_id, authentication_id, org_id, account_number, aws_account_id, role_arn, state, mapped,
  last_error_code, last_error_message, attempts, created_at, updated_at, verified_at`

function toRegistration (r: Record<string, any>): Registration {
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
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    verifiedAt: r.verified_at
  }
}

// One row whatever exists: the tombstone flag, and the registration's columns (null without one).
const BY_APPLICATION_WITH_TOMBSTONE = `
select exists (select 1 from destroyed_applications where application_id = $1) as destroyed, r.*
from (select 1) one
left join (select ${COLUMNS} from registrations where application_id = $1) r on true`

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

/** Who else holds this AWS account or role: the duplicate rules of the lifecycle. */
export type Conflict = 'CR4001' | 'CG1001' | null

export interface Registrations {
  findByApplication: (applicationId: string) => Promise<Registration | null>
  /** The application's registration, and whether it was destroyed (a tombstone), in one query. */
  findApplication: (applicationId: string) => Promise<{ destroyed: boolean, registration: Registration | null }>
  findConflict: (r: { applicationId: string, orgId: string, awsAccountId: string, roleArn: string }) => Promise<Conflict>
  findBySource: (orgId: string, sourceId: string) => Promise<Registration | null>
  /** For operators, who act across orgs. */
  findBySourceInAnyOrg: (sourceId: string) => Promise<Registration | null>
  list: (q: RegistrationQuery) => Promise<{ count: number, data: Registration[] }>
}

export function createRegistrations (pool: pg.Pool): Registrations {
  return {
    async findByApplication (applicationId) {
      const { rows } = await pool.query({ name: 'registrations-by-application', text: `select ${COLUMNS} from registrations where application_id = $1`, values: [applicationId] })
      return rows.length > 0 ? toRegistration(rows[0]) : null
    },
    async findApplication (applicationId) {
      const { rows: [row] } = await pool.query({ name: 'registrations-by-application-with-tombstone', text: BY_APPLICATION_WITH_TOMBSTONE, values: [applicationId] })
      return { destroyed: row.destroyed, registration: row.application_id === null ? null : toRegistration(row) }
    },
    async findConflict ({ applicationId, orgId, awsAccountId, roleArn }) {
      const { rows } = await pool.query<{ code: 'CR4001' | 'CG1001' }>({ name: 'registrations-conflict', text: CONFLICT, values: [applicationId, orgId, awsAccountId, roleArn] })
      return rows[0]?.code ?? null
    },
    async findBySource (orgId, sourceId) {
      // A source has one cloud-meter application; should history hold more, the latest speaks for it.
      const { rows } = await pool.query(
        `select ${COLUMNS} from registrations where org_id = $1 and source_id = $2 order by updated_at desc limit 1`, [orgId, sourceId])
      return rows.length > 0 ? toRegistration(rows[0]) : null
    },
    async findBySourceInAnyOrg (sourceId) {
      const { rows } = await pool.query(`select ${COLUMNS} from registrations where source_id = $1 order by updated_at desc limit 1`, [sourceId])
      return rows.length > 0 ? toRegistration(rows[0]) : null
    },
    async list ({ orgId, state, limit, offset }) {
      const where = state === undefined ? 'org_id = $1' : 'org_id = $1 and state = $2'
      const params: unknown[] = state === undefined ? [orgId] : [orgId, state]
      const count = await pool.query<{ count: string }>(`select count(*) from registrations where ${where}`, params)
      const { rows } = await pool.query(
        `select ${COLUMNS} from registrations where ${where}
         order by length(source_id), source_id, application_id limit $${params.length + 1} offset $${params.length + 2}`,
        [...params, limit, offset])
      return { count: Number(count.rows[0].count), data: rows.map(toRegistration) }
    }
  }
}
