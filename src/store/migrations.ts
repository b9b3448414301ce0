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
  alter table inbox add column traceparent text, add column tracestate text, add column role_session_name text;
  alter table status_outbox add column traceparent text, add column tracestate text;
  `
]
