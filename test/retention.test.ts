import t from 'tap'
import { pruneOlderThan } from '../src/store/retention.js'
import { startBareApp } from './helpers/stack.js'

t.test('history older than RETENTION_DAYS is pruned; registrations, pending events and dead letters are kept', async t => {
  const app = await startBareApp(t)
  const { pool } = app.store
  await pool.query(`insert into inbox (event_type, org_id, body, dedupe_key, state, finished_at)
    select 'X.y', '1', '{}', 'k' || n, case when n % 4 = 0 then 'dead' when n % 4 = 1 then 'pending' else 'done' end,
           case when n % 4 = 1 then null else now() - interval '40 days' end
    from generate_series(1, 2400) n`)
  await pool.query('insert into inbox (event_type, org_id, body, dedupe_key, state, finished_at) values (\'X.y\', \'1\', \'{}\', \'recent\', \'done\', now())')
  await pool.query(`insert into status_outbox (application_id, org_id, status, created_at, sent_at)
    values ('1', '1', 'available', now() - interval '40 days', now() - interval '40 days'), ('2', '1', 'available', now() - interval '40 days', null)`)
  await pool.query(`insert into delivery_keys (key, expires_at, created_at) values
    ('old', null, now() - interval '40 days'), ('expired', now() - interval '1 second', now()), ('fresh-hash', now() + interval '1 minute', now()), ('durable', null, now())`)
  await pool.query('insert into registrations (application_id, source_id, org_id, state, updated_at) values (\'1\', \'1\', \'1\', \'registered\', now() - interval \'400 days\')')

  // Three attempts of each event, all old but the last one of the pending events and of the recent event.
  await pool.query(`insert into event_attempts (event_id, attempt, started_at, finished_at, duration_ms, result, replica)
    select i.id, a, now() - interval '41 days', case when a = 3 and i.state in ('pending', 'done') and (i.state = 'pending' or i.dedupe_key = 'recent')
      then now() else now() - interval '41 days' end, 5, 'retry', 'r1'
    from inbox i, generate_series(1, 3) a`)
  await pool.query(`insert into operator_tasks (kind, state, params, event_ids, matched, created_at) values
    ('dead-letter-replay', 'done', '{}', '{}', 0, now() - interval '40 days'), ('dead-letter-replay', 'running', '{}', '{}', 0, now() - interval '40 days'),
    ('dead-letter-replay', 'done', '{}', '{}', 0, now())`)

  for (const [id, state, days] of [['old', 'done', 40], ['old-running', 'running', 40], ['recent', 'done', 1]] as const) {
    await pool.query('insert into reconcile_runs (id, dry_run, state, owner, started_at) values ($1, true, $2, \'x\', now() - $3 * interval \'1 day\')', [id, state, days])
    await pool.query('insert into reconcile_drift (run_id, seq, class, detail, repair) values ($1, 0, \'rhsm_orphan\', \'d\', \'r\')', [id])
  }

  const pruned = await pruneOlderThan(pool, 30)
  t.same(pruned, { events: 1200, statuses: 1, deliveryKeys: 2, attempts: 2 * 600 + 3 * 1200 + 2, tasks: 1, reconcileRuns: 1 })
  t.same((await pool.query('select run_id from reconcile_drift order by run_id')).rows.map(r => r.run_id), ['old-running', 'recent'], 'a pruned run takes its drift along; a running one is kept')
  const count = async (sql: string): Promise<number> => (await pool.query(sql)).rows[0].n
  t.equal(await count('select count(*)::int as n from inbox where state = \'dead\''), 600, 'dead letters kept')
  t.equal(await count('select count(*)::int as n from inbox where state = \'pending\''), 600, 'pending events kept')
  t.equal(await count('select count(*)::int as n from inbox where state = \'done\''), 1, 'recent history kept')
  t.equal(await count('select count(*)::int as n from status_outbox where sent_at is null'), 1, 'unsent statuses kept')
  t.same((await pool.query('select key from delivery_keys order by key')).rows.map(r => r.key), ['durable', 'fresh-hash'])
  t.equal(await count('select count(*)::int as n from registrations'), 1, 'registrations kept')
  t.equal(await count('select count(*)::int as n from event_attempts a join inbox i on i.id = a.event_id where i.state = \'dead\''), 1800, 'dead letters keep every attempt')
  t.equal(await count('select count(*)::int as n from event_attempts a join inbox i on i.id = a.event_id where i.state = \'pending\''), 600, 'pending events keep their recent attempts')
  t.equal(await count('select count(*)::int as n from event_attempts a join inbox i on i.id = a.event_id where i.state = \'done\''), 1, 'the recent event keeps its recent attempt')
  t.equal(await count('select count(*)::int as n from operator_tasks'), 2, 'running and recent tasks kept')
})
