import t from 'tap'
import { runCli } from './helpers/process.js'
import { eventually, freePort, pushNative, startStack } from './helpers/stack.js'

const TOKEN = 'internal-token-for-tests-0123456789ab'
const arn = (n: number): string => `arn:aws:iam::12345678901${n}:role/redhat-cloud-meter`
const noStackTrace = /^\s+at .+\(.+:\d+:\d+\)$/m

t.test('the cloudoreg executable against a real server: status, history, dead letters, a watched bulk replay, errors', async t => {
  const stack = await startStack(t, { env: { INTERNAL_TOKEN: TOKEN, RETRY_MAX_ATTEMPTS: '2', UPSTREAM_CALL_ATTEMPTS: '1' } })
  const env = { CLOUDOREG_URL: stack.url, CLOUDOREG_TOKEN: TOKEN }
  const cli = async (...args: string[]): ReturnType<typeof runCli> => await runCli(args, env)
  const state = async (id: number): Promise<string> => (await stack.app.store.pool.query('select state from inbox where id = $1', [id])).rows[0]?.state

  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: arn(1) })
  await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 42, authentication_id: 311 })
  await eventually(async () => await state(1) === 'done' ? true : undefined)
  stack.sources.addSource({ sourceId: '9', applicationId: '44', authenticationId: '313', arn: arn(3) })
  stack.rhsm.failNext(2, 503)
  await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 44, authentication_id: 313 })
  await eventually(async () => await state(2) === 'dead' ? true : undefined)

  // The real executable, as `npx cloudoreg` runs it from a checkout (compiled first when a source changed).
  const viaBin = await runCli(['status', '7'], env, 'bin')
  t.equal(viaBin.code, 0, viaBin.stderr)
  t.match(viaBin.stdout, /state\s+registered/)
  t.match(viaBin.stdout, /mapped in RHSM\s+true/)

  const json = await cli('status', '9', '--json')
  t.equal(json.code, 0)
  t.match(JSON.parse(json.stdout), { source_id: '9', state: 'unavailable', error: { code: 'CR5000' } })

  const history = await cli('history', '9')
  t.equal(history.code, 0)
  t.match(history.stdout, /attempt 1 \(\d+ ms, .+\)\s+2\s+retry\s+rhsm RHSM HTTP 503/)
  t.match(history.stdout, /attempt 2 \(\d+ ms, .+\)\s+2\s+dead\s+rhsm RHSM HTTP 503 CR5000/)

  const list = await cli('dead-letters', 'list', '--upstream', 'rhsm', '--error-code', '503')
  t.equal(list.code, 0)
  t.match(list.stdout, /^id\s+type\s+org\s+source\s+attempts\s+upstream\s+code/m)
  t.match(list.stdout, /^2\s+ApplicationAuthentication\.create\s+7654321\s+9\s+2\s+rhsm\s+HTTP 503/m)
  t.match(list.stdout, /1 of 1 dead letters/)

  const dry = await cli('dead-letters', 'replay', '--upstream', 'rhsm', '--dry-run', '--json')
  t.same(JSON.parse(dry.stdout), { dry_run: true, matched: 1, ids: [2] })
  t.equal(await state(2), 'dead', 'a dry run replays nothing')

  const replay = await cli('dead-letters', 'replay', '--upstream', 'rhsm')
  t.equal(replay.code, 0, replay.stderr)
  t.match(replay.stderr, /replaying 1 dead letters: task 1/)
  t.match(replay.stdout, /task 1 done: 1 matched, 1 replayed, 1 done, 0 failed again, 0 skipped/)
  t.match(JSON.parse((await cli('status', '9', '--json')).stdout), { state: 'registered' })
  t.match(JSON.parse((await cli('tasks', 'watch', '1', '--json')).stdout), { id: 1, state: 'done', matched: 1, replayed: 1, done: 1 })

  // Failures: the problem's detail in one line, never a stack trace, and a non-zero exit.
  const missing = await cli('tasks', 'watch', '99999')
  t.equal(missing.code, 1)
  t.match(missing.stderr, /^cloudoreg: GET \/internal\/v1\/tasks\/99999: 404 Not Found: no task 99999/)
  t.notMatch(missing.stderr, noStackTrace)
  // The reconciliation is another branch's route: until it is there, its 404 is printed as any problem.
  const reconcile = await cli('reconcile')
  t.equal(reconcile.code, 1)
  t.match(reconcile.stderr, /^cloudoreg: POST \/internal\/v1\/reconcile: 404 Not Found: no route POST \/internal\/v1\/reconcile/)
  const bad = await cli('dead-letters', 'replay', '--upstream', 'nowhere', '--dry-run')
  t.equal(bad.code, 1)
  t.match(bad.stderr, /400 Bad Request: body.*upstream/)
  const noToken = await runCli(['status', '7'], { CLOUDOREG_URL: stack.url })
  t.equal(noToken.code, 1)
  t.match(noToken.stderr, /401 Unauthorized: .*CLOUDOREG_TOKEN is not set/)
  const usage = await cli('status', 'seven')
  t.equal(usage.code, 2)
  t.match(usage.stderr, /the source id must be a number, not "seven"[\s\S]*usage:/)
  const nobody = `http://127.0.0.1:${await freePort()}`
  const down = await runCli(['status', '7'], { CLOUDOREG_URL: nobody, CLOUDOREG_TOKEN: TOKEN })
  t.equal(down.code, 1)
  t.equal(down.stderr, `cloudoreg: cannot reach ${nobody} (ECONNREFUSED); set CLOUDOREG_URL to cloudoreg's address\n`)
  t.notMatch(down.stderr, noStackTrace)
})
