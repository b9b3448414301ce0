import t from 'tap'
import { runBulkReplay } from '../src/pipeline/bulk-replay.js'
import { eventually, ORG, startBareApp, startStack } from './helpers/stack.js'

const TOKEN = 'internal-token-for-tests-0123456789ab'

// Three kinds of dead letters, 300 each, interleaved by id; gave up one to three hours ago.
const KINDS = [
  { eventType: 'ApplicationAuthentication.create', upstream: 'rhsm', step: 'RHSM', status: 503, code: 'HTTP 503', hoursAgo: 2 },
  { eventType: 'ApplicationAuthentication.create', upstream: 'sts', step: 'AssumeRole', status: 400, code: 'Throttling', hoursAgo: 2 },
  { eventType: 'Authentication.update', upstream: 'sources', step: 'read application', status: 500, code: 'HTTP 500', hoursAgo: 1 }
]

async function seedDeadLetters (pool: any): Promise<number[][]> {
  await pool.query(`insert into inbox (event_type, queue_key, org_id, body, dedupe_key, state, outcome, attempts, finished_at, last_error)
    select ($1::text[])[n % 3 + 1], 'app:' || (1000 + n), case when n % 2 = 0 then $2 else '1111111' end,
      jsonb_build_object('application_id', 1000 + n, 'authentication_id', 5000 + n, 'id', 5000 + n, 'resource_type', 'Application', 'resource_id', 1000 + n),
      'seed:' || n, 'dead', 'CR5000', 2, now() - ($3::int[])[n % 3 + 1] * interval '1 hour' + n * interval '1 second', 'gave up'
    from generate_series(0, 899) n`, [KINDS.map(k => k.eventType), ORG, KINDS.map(k => k.hoursAgo)])
  // Each one's two attempts; the filters look at the last.
  await pool.query(`insert into event_attempts (event_id, attempt, started_at, finished_at, duration_ms, result, upstream, step, http_status, error_code, outcome_code, error, replica)
    select i.id, a, i.finished_at, i.finished_at, 12, case when a = 2 then 'dead' else 'retry' end,
      k.upstream, k.step, k.status, k.code, case when a = 2 then 'CR5000' end, k.upstream || ': failed', 'seed/1/00000000'
    from inbox i join unnest($1::text[], $2::text[], $3::int[], $4::text[]) with ordinality as k(upstream, step, status, code, kind)
      on k.kind = ((i.id - 1) % 3) + 1, generate_series(1, 2) a`, [KINDS.map(k => k.upstream), KINDS.map(k => k.step), KINDS.map(k => k.status), KINDS.map(k => k.code)])
  const { rows } = await pool.query('select id::int, ((id - 1) % 3)::int as kind from inbox order by id')
  return [0, 1, 2].map(kind => rows.filter((r: any) => r.kind === kind).map((r: any) => r.id))
}

t.test('900 dead letters of three kinds: a filtered dry run names exactly the 300 a real run replays, a task shows the progress', async t => {
  const stack = await startStack(t, { env: { INTERNAL_TOKEN: TOKEN } })
  const op = async (path: string, body?: unknown): Promise<{ status: number, body: any, headers: Headers }> => {
    const res = await fetch(`${stack.url}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body)
    })
    return { status: res.status, body: await res.json(), headers: res.headers }
  }
  const [rhsm, sts, sources] = await seedDeadLetters(stack.app.store.pool)
  t.equal(rhsm.length + sts.length + sources.length, 900)

  // Each filter selects exactly its kind.
  const dry = async (filters: Record<string, unknown>): Promise<number[]> => {
    const res = await op('/internal/v1/dead-letters/replay', { ...filters, limit: 10_000 })
    t.equal(res.status, 200, 'a dry run by default')
    return res.body.ids
  }
  t.same(await dry({ upstream: 'rhsm' }), rhsm)
  t.same(await dry({ error_code: 'HTTP 503' }), rhsm, '"HTTP 503" and "503" are the same answer')
  t.same(await dry({ error_code: 'throttling' }), sts, 'AWS codes in any case')
  t.same(await dry({ event_type: 'Authentication.update' }), sources)
  t.same(await dry({ upstream: 'sts', org_id: ORG }), sts.filter(id => (id - 1) % 2 === 0))
  const ninetyMinutesAgo = new Date(Date.now() - 90 * 60_000).toISOString()
  t.same(await dry({ until: ninetyMinutesAgo }), [...rhsm, ...sts].sort((a, b) => a - b), 'until: gave up before')
  const { rows: [middle] } = await stack.app.store.pool.query('select finished_at from inbox where id = $1', [sources[150]])
  t.same(await dry({ since: middle.finished_at.toISOString(), upstream: 'sources' }), sources.slice(150), 'since: gave up at or after')
  t.same((await op('/internal/v1/dead-letters/replay', { upstream: 'rhsm', limit: 10 })).body, { dry_run: true, matched: 10, ids: rhsm.slice(0, 10) }, 'limit: the oldest')
  t.match((await op('/internal/v1/dead-letters?upstream=rhsm&error_code=503&limit=1')).body, { meta: { count: 300 }, data: [{ id: rhsm[0], last_attempt: { upstream: 'rhsm', error_code: 'HTTP 503' } }] })
  t.equal((await op('/internal/v1/dead-letters/replay', { upstream: 'nowhere' })).status, 400, 'an unknown upstream')
  t.equal((await op('/internal/v1/dead-letters/replay', { limit: 10_001 })).status, 400, 'bounded')
  t.equal((await op('/internal/v1/dead-letters/replay', { since: 'yesterday' })).status, 400, 'a date-time')
  t.equal((await op('/internal/v1/dead-letters/replay', { error_code: "x'; drop table inbox; --" })).status, 400, 'error codes are words')

  const dryRun = await dry({ upstream: 'rhsm', error_code: '503' })
  const real = await op('/internal/v1/dead-letters/replay', { upstream: 'rhsm', error_code: '503', dry_run: false, limit: 10_000 })
  t.equal(real.status, 202)
  t.match(real.body, { kind: 'dead-letter-replay', dry_run: false, state: 'running', matched: 300 })
  t.same(real.body.ids, dryRun, 'the real run replays exactly what the dry run named')
  t.equal(real.headers.get('location'), `/internal/v1/tasks/${real.body.id}`)

  const task = await eventually(async () => {
    const res = await op(`/internal/v1/tasks/${real.body.id}`)
    return res.body.state !== 'running' ? res.body : undefined
  }, 90_000, 'the replay task to finish')
  t.match(task, { state: 'done', matched: 300, replayed: 300, skipped: 0, pending: 0, error: null, params: { upstream: 'rhsm', error_code: '503' } })
  t.equal(task.done + task.failed, 300, 'every replay ended')

  // Exactly the 300 were replayed, each once, in order, each behind everything stored before it.
  const { rows } = await stack.app.store.pool.query('select id::int, replay_of::int, replayed_as::int, state from inbox order by id')
  const replayedOriginals = rows.filter((r: any) => r.replayed_as !== null).map((r: any) => r.id)
  t.same(replayedOriginals, rhsm)
  const copies = rows.filter((r: any) => r.replay_of !== null)
  t.same(copies.map((c: any) => c.replay_of), rhsm, 'copies in the originals\' order')
  t.ok(copies.every((c: any) => c.id > 900), 'each copy at the end of the inbox, behind its source\'s earlier events')
  t.equal((await op('/internal/v1/dead-letters?upstream=rhsm')).body.meta.count, 0, 'replayed: no longer selected')
  t.equal((await op('/internal/v1/dead-letters')).body.meta.count, 600 + task.failed, 'the other kinds untouched')
  t.match(await op('/internal/v1/tasks/99999'), { status: 404, body: { detail: /no task 99999/ } })
  t.equal((await fetch(`${stack.url}/internal/v1/tasks/${real.body.id}`)).status, 401)
})

t.test('a bulk replay skips what was replayed meanwhile, and stops at shutdown saying how far it got', async t => {
  const app = await startBareApp(t, { INTERNAL_TOKEN: TOKEN })
  const { store } = app
  const [rhsm] = await seedDeadLetters(store.pool)
  const ids = rhsm.slice(0, 60)
  await store.inbox.replay(ids[1])
  const taskId = await store.tasks.create('dead-letter-replay', {}, ids, 'test')
  await runBulkReplay({ inbox: store.inbox, tasks: store.tasks, taskId, ids, signal: new AbortController().signal, log: app.log })
  t.match(await store.tasks.get(taskId), { state: 'done', matched: 60, replayed: 59, skipped: 1, pending: 59 }, 'the copies wait: no upstreams here')

  const stopped = new AbortController()
  stopped.abort()
  const later = await store.tasks.create('dead-letter-replay', {}, rhsm.slice(60), 'test')
  await runBulkReplay({ inbox: store.inbox, tasks: store.tasks, taskId: later, ids: rhsm.slice(60), signal: stopped.signal, log: app.log })
  t.match(await store.tasks.get(later), { state: 'failed', replayed: 0, error: /shutdown after 0 of 240/ })

  // A replica that died mid-task writes no progress: after two silent minutes, any replica reports the task failed.
  const orphan = await store.tasks.create('dead-letter-replay', {}, [1, 2, 3], 'gone-host/42')
  await store.pool.query("update operator_tasks set heartbeat_at = now() - interval '3 minutes' where id = $1", [orphan])
  const res = await app.inject({ method: 'GET', url: `/internal/v1/tasks/${orphan}`, headers: { authorization: `Bearer ${TOKEN}` } })
  t.match(res.json(), { state: 'failed', matched: 3, replayed: 0, error: /replica running it \(gone-host\/42\) stopped after 0 of 3; replay again with the same filters/ })

  // The database failing mid-task: the task says so, and how far it got.
  const broken = await store.tasks.create('dead-letter-replay', {}, [1, 2], 'test')
  const failing = { replay: async () => { throw new Error('connection terminated') } }
  await runBulkReplay({ inbox: failing, tasks: store.tasks, taskId: broken, ids: [1, 2], signal: new AbortController().signal, log: app.log })
  t.match(await store.tasks.get(broken), { state: 'failed', error: 'connection terminated (after 0 of 2)' })

  // A dead letter from before attempts were recorded: listed, with no last attempt, and selected by no upstream.
  await store.pool.query("insert into inbox (event_type, org_id, body, dedupe_key, state, finished_at) values ('Source.destroy', '1', '{}', 'old', 'dead', now())")
  const { data } = await store.deadLetters.list({ eventType: 'Source.destroy' }, false, 10, 0)
  t.match(data, [{ eventType: 'Source.destroy', lastAttempt: null }])
  t.same(await store.deadLetters.select({ eventType: 'Source.destroy', upstream: 'rhsm' }, 10), [])
})
