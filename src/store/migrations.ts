// Append only: a migration that has run anywhere is never edited.
export const migrations: string[] = [
  `
  create table inbox (
    id bigserial primary key,
    event_type text not null,
    queue_key text,
    org_id text not null,
    account_number text,
    body jsonb not null,
    delivery_id text,
    dedupe_key text not null,
    state text not null default 'pending' check (state in ('pending', 'done', 'ignored', 'dead')),
    outcome text,
    attempts integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    last_error text,
    received_at timestamptz not null default now(),
    finished_at timestamptz
  );
  create index inbox_pending on inbox (id) where state = 'pending';

  create table delivery_keys (
    key text primary key,
    expires_at timestamptz
  );

  create table registrations (
    application_id text primary key,
    source_id text not null,
    authentication_id text,
    org_id text not null,
    account_number text,
    aws_account_id text,
    role_arn text,
    state text not null check (state in ('pending', 'registered', 'unavailable', 'paused', 'removed')),
    mapped boolean not null default false,
    last_error_code text,
    last_error_message text,
    attempts integer not null default 0,
    last_event_id bigint,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    verified_at timestamptz
  );
  create index registrations_by_org_source on registrations (org_id, source_id);

  create table status_outbox (
    id bigserial primary key,
    application_id text not null,
    org_id text not null,
    account_number text,
    status text not null check (status in ('available', 'unavailable')),
    error text not null default '',
    created_at timestamptz not null default now(),
    sent_at timestamptz,
    superseded boolean not null default false
  );
  create index status_outbox_unsent on status_outbox (id) where sent_at is null and not superseded;
  `,
  `
  create table destroyed_applications (
    application_id text primary key,
    source_id text,
    org_id text not null,
    destroyed_at timestamptz not null default now()
  );
  create index registrations_by_aws_account on registrations (aws_account_id);
  create index registrations_by_role_arn on registrations (org_id, role_arn);
  create index inbox_by_queue_key on inbox (queue_key, id);
  `,
  `
  alter table delivery_keys add column created_at timestamptz not null default now();
  create index inbox_finished on inbox (finished_at) where state in ('done', 'ignored');
  `,
  `
  create table source_leases (
    queue_key text primary key,
    owner text not null,
    expires_at timestamptz not null
  );
  create index source_leases_by_owner on source_leases (owner);
  `,
  `
  -- Tenants: a tombstone belongs to the org whose application was destroyed, so that another org's
  -- event can never tombstone (and so block) an application of someone else.
  alter table destroyed_applications drop constraint destroyed_applications_pkey;
  alter table destroyed_applications add primary key (application_id, org_id);
  -- What an org may see in a source's history besides its own events: events of another org that
  -- were refused on its registration, tombstones lifted by an operator.
  create table registration_audit (
    id bigserial primary key,
    org_id text not null,
    application_id text not null,
    source_id text,
    event_id bigint,
    action text not null,
    detail text not null,
    at timestamptz not null default now()
  );
  create index registration_audit_by_application on registration_audit (org_id, application_id, id);
  -- Undeliverable status messages are retried a bounded number of times, then parked.
  alter table status_outbox
    add column attempts integer not null default 0,
    add column last_error text,
    add column next_attempt_at timestamptz not null default now(),
    add column parked_at timestamptz;
  drop index status_outbox_unsent;
  create index status_outbox_unsent on status_outbox (id) where sent_at is null and not superseded and parked_at is null;
  create index status_outbox_parked on status_outbox (id) where parked_at is not null and sent_at is null and not superseded;
  `,
  // Following an event: the source an event concerns (named by it, or learnt while running it),
  // replays both ways, a redelivery's original id; what a registration's last check found, step
  // by step; customers' re-checks, one a minute per source.
  `
  alter table inbox add column source_id text, add column replay_of bigint, add column replayed_as bigint;
  create index inbox_by_source on inbox (org_id, source_id, id) where source_id is not null;
  create index inbox_by_dedupe_key on inbox (dedupe_key);
  create index inbox_dead on inbox (id) where state = 'dead';
  alter table registrations add column failed_step text, add column upstream_code text, add column external_id text,
    add column checked_at timestamptz;
  create table check_requests (
    org_id text not null,
    source_id text not null,
    requested_at timestamptz not null default now(),
    primary key (org_id, source_id)
  );
  `,
  // Tracing: the W3C trace context an event arrived with (or was given at ingest), so that its
  // processing continues that trace on any replica; the STS session name its run used; the status
  // message carries the trace on to Kafka and sources-api.
  `
  alter table inbox add column traceparent text, add column tracestate text, add column role_session_name text;
  alter table status_outbox add column traceparent text, add column tracestate text;
  `,
  // Reconciliation: each run (any replica answers for it) and the drift it found, bounded per run;
  // the sweep reads each application's last status, hence the index.
  `
  create table reconcile_runs (
    id text primary key,
    dry_run boolean not null,
    scheduled boolean not null default false,
    state text not null check (state in ('running', 'done', 'failed')),
    owner text not null,
    started_at timestamptz not null default now(),
    heartbeat_at timestamptz not null default now(),
    finished_at timestamptz,
    checked integer not null default 0,
    total integer,
    counts jsonb not null default '{}',
    drift_found integer not null default 0,
    repairs_queued integer not null default 0,
    error text
  );
  create index reconcile_runs_last_dry on reconcile_runs (finished_at) where dry_run and state = 'done';
  create index reconcile_runs_started on reconcile_runs (started_at);
  create table reconcile_drift (
    run_id text not null references reconcile_runs (id) on delete cascade,
    seq integer not null,
    class text not null,
    source_id text,
    application_id text,
    org_id text,
    rhsm_account_id text,
    detail text not null,
    repair text not null,
    primary key (run_id, seq)
  );
  create index status_outbox_by_application on status_outbox (application_id, id);
  `,
  // Lanes (src/events/lanes.ts): stored at insert, read by the scheduler to choose which source runs
  // next. Rows pending at the upgrade keep the default, the customer lane: they were queued first.
  // Replicas: each live replica's heartbeat, so that the upstream rate budgets are shared among them.
  `
  alter table inbox add column lane smallint not null default 0;
  create index inbox_pending_keys on inbox (queue_key, org_id, lane, id) where state = 'pending';
  create table replicas (
    owner text primary key,
    seen_at timestamptz not null default now()
  );
  `,
  // Every attempt of every event, for operators and the source's history: when, how long, what it led
  // to, which upstream call failed and with what (HTTP status, AWS error code), on which replica.
  // Written by the statement that records the attempt's retry or outcome (no extra round trip).
  // Background tasks of operators (bulk replays), so that any replica answers for their progress.
  `
  create table event_attempts (
    id bigserial primary key,
    event_id bigint not null,
    attempt integer not null,
    started_at timestamptz not null,
    finished_at timestamptz not null default now(),
    duration_ms integer not null,
    result text not null check (result in ('retry', 'done', 'dead')),
    upstream text,
    step text,
    http_status integer,
    error_code text,
    outcome_code text,
    error text,
    replica text not null
  );
  create index event_attempts_by_event on event_attempts (event_id, attempt);
  create index event_attempts_by_time on event_attempts (finished_at);
  create table operator_tasks (
    id bigserial primary key,
    kind text not null,
    state text not null default 'running' check (state in ('running', 'done', 'failed')),
    params jsonb not null,
    event_ids bigint[] not null,
    copy_ids bigint[] not null default '{}',
    matched integer not null,
    replayed integer not null default 0,
    skipped integer not null default 0,
    error text,
    owner text,
    heartbeat_at timestamptz not null default now(),
    created_at timestamptz not null default now(),
    finished_at timestamptz
  );
  `,
  // Statuses leave in lane order too (src/events/lanes.ts): a customer's status no longer waits behind a
  // wave of re-checks' statuses. Rows unsent at the upgrade keep the default, the customer lane. The
  // unsent index follows the relay's order (lane, id).
  `
  alter table status_outbox add column lane smallint not null default 0;
  drop index status_outbox_unsent;
  create index status_outbox_unsent on status_outbox (lane, id) where sent_at is null and not superseded and parked_at is null;
  `,
  // Each replica's heartbeat also says how much work it holds, so that the upstream rate budgets are
  // shared by the work and not left unused by a replica with little of it.
  `
  alter table replicas add column demand integer not null default 0;
  `
]
