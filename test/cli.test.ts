import { createServer } from 'node:http'
import { PassThrough } from 'node:stream'
import t from 'tap'
import { main } from '../src/cli/main.js'
import { runCli } from './helpers/process.js'
import { eventually, freePort, pushNative, startStack } from './helpers/stack.js'

const TOKEN = 'internal-token-for-tests-0123456789ab'
const arn = (n: number): string => `arn:aws:iam::12345678901${n}:role/redhat-cloud-meter`
const noStackTrace = /^\s+at .+\(.+:\d+:\d+\)$/m

/** The CLI's main() in this process (same code as the executable), its output captured; `tty` draws the bars on a terminal-like stream. */
async function inProcess (args: string[], env: Record<string, string>, tty = false): Promise<{ code: number, stdout: string, stderr: string, bars: string }> {
  let stdout = ''
  let stderr = ''
  let bars = ''
  const stream = Object.assign(new PassThrough(), { isTTY: tty, columns: 120 })
  stream.on('data', (d: Buffer) => { bars += d.toString() })
  const code = await main(args, { env, stdout: text => { stdout += text }, stderr: text => { stderr += text }, bars: stream, pollMs: 50 })
  return { code, stdout, stderr, bars }
}

t.test('the cloudoreg CLI against a real server: status, history, dead letters, a watched bulk replay, errors', async t => {
  const stack = await startStack(t, { env: { INTERNAL_TOKEN: TOKEN, RETRY_MAX_ATTEMPTS: '2', UPSTREAM_CALL_ATTEMPTS: '1' } })
  const env = { CLOUDOREG_URL: stack.url, CLOUDOREG_TOKEN: TOKEN }
  const cli = async (...args: string[]): ReturnType<typeof inProcess> => await inProcess(args, env)
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

  t.match(JSON.parse((await cli('status', '9', '--json')).stdout), { source_id: '9', state: 'unavailable', error: { code: 'CR5000' } })
  const history = await cli('history', '9')
  t.equal(history.code, 0)
  t.match(history.stdout, /attempt 1 \(\d+ ms, .+\)\s+2\s+retry\s+rhsm RHSM HTTP 503/)
  t.match(history.stdout, /attempt 2 \(\d+ ms, .+\)\s+2\s+dead\s+rhsm RHSM HTTP 503 CR5000/)
  t.match(history.stdout, /status unavailable\s+-\s+(sent|unsent)/)

  const list = await cli('dead-letters', 'list', '--upstream', 'rhsm', '--error-code', '503')
  t.equal(list.code, 0)
  t.match(list.stdout, /^id\s+type\s+org\s+source\s+attempts\s+upstream\s+code/m)
  t.match(list.stdout, /^2\s+ApplicationAuthentication\.create\s+7654321\s+9\s+2\s+rhsm\s+HTTP 503/m)
  t.match(list.stdout, /1 of 1 dead letters/)
  t.match((await cli('dead-letters', 'list', '--upstream', 'sts')).stdout, /\(none\)\n0 of 0 dead letters/)
  t.match(JSON.parse((await cli('dead-letters', 'list', '--json', '--limit', '5', '--include-replayed')).stdout), { meta: { count: 1, limit: 5 } })

  const dry = await cli('dead-letters', 'replay', '--upstream', 'rhsm', '--dry-run')
  t.equal(dry.stdout, 'dry run: 1 dead letters would be replayed:\n2\n')
  t.same(JSON.parse((await cli('dead-letters', 'replay', '--upstream', 'sts', '--dry-run', '--json')).stdout), { dry_run: true, matched: 0, ids: [] })
  t.equal(await state(2), 'dead', 'a dry run replays nothing')

  // The real run, through the executable: a task watched to its end.
  const replay = await runCli(['dead-letters', 'replay', '--upstream', 'rhsm'], env)
  t.equal(replay.code, 0, replay.stderr)
  t.match(replay.stderr, /replaying 1 dead letters: task 1/)
  t.match(replay.stdout, /task 1 done: 1 matched, 1 replayed, 1 done, 0 failed again, 0 skipped/)
  t.match(JSON.parse((await cli('status', '9', '--json')).stdout), { state: 'registered' })
  t.match(JSON.parse((await cli('tasks', 'watch', '1', '--json')).stdout), { id: 1, state: 'done', matched: 1, replayed: 1, done: 1 })
  t.match((await cli('dead-letters', 'replay', '--no-wait')).stdout, /replaying 0 dead letters: task 2 \(cloudoreg tasks watch 2\)/)

  // Failures: the problem's detail in one line, never a stack trace, and a non-zero exit.
  const missing = await runCli(['tasks', 'watch', '99999'], env)
  t.equal(missing.code, 1)
  t.match(missing.stderr, /^cloudoreg: GET \/internal\/v1\/tasks\/99999: 404 Not Found: no task 99999/)
  t.notMatch(missing.stderr, noStackTrace)
  const usage = await runCli(['status', 'seven'], env)
  t.equal(usage.code, 2)
  t.match(usage.stderr, /the source id must be a number, not "seven"[\s\S]*usage:/)
  // The reconciliation's real route: a dry run, followed to its end.
  const reconcile = await cli('reconcile', '--json')
  t.equal(reconcile.code, 0, reconcile.stderr)
  t.match(reconcile.stderr, /dry run: nothing is changed: run [0-9a-f-]+/)
  t.match(JSON.parse(reconcile.stdout), { dry_run: true, state: 'done', checked: Number, counts: Object, drift: Array })
  const bad = await cli('dead-letters', 'replay', '--upstream', 'nowhere', '--dry-run')
  t.equal(bad.code, 1)
  t.match(bad.stderr, /400 Bad Request: body.*upstream/)
  const noToken = await inProcess(['status', '7'], { CLOUDOREG_URL: stack.url })
  t.equal(noToken.code, 1)
  t.match(noToken.stderr, /401 Unauthorized: .*CLOUDOREG_TOKEN is not set/)
  const nobody = `http://127.0.0.1:${await freePort()}`
  const down = await inProcess(['status', '7', '--url', nobody], { CLOUDOREG_TOKEN: TOKEN })
  t.equal(down.code, 1)
  t.equal(down.stderr, `cloudoreg: cannot reach ${nobody} (ECONNREFUSED); set CLOUDOREG_URL to cloudoreg's address\n`)
  for (const args of [['frobnicate'], ['--what'], ['dead-letters'], ['tasks', 'list'], ['dead-letters', 'list', '--limit', 'ten'], []]) {
    const r = await cli(...args)
    t.equal(r.code, 2, `usage: ${args.join(' ')}`)
    t.match(r.stderr + r.stdout, /usage:/)
  }
  t.match(await cli('--help'), { code: 0, stdout: /cloudoreg reconcile \[--apply\]/ })
})

t.test('reconcile follows the reconciliation contract with a live bar on a terminal; a failed run exits 1', async t => {
  // A stand-in for POST /internal/v1/reconcile and GET /internal/v1/reconcile/{id} with the shapes of
  // their contract, which can be made to run long (the bar) and to fail.
  const RUN = '0b7f9d4e-3c1a-4f4e-9d0a-2f1e8c6b5a4d'
  let polls = 0
  let fail = false
  const drift = [{ class: 'rhsm_orphan', source_id: '12', application_id: '99', org_id: '7654321', rhsm_account_id: '123456789012', detail: 'source is gone', repair: 'delete the RHSM mapping' }]
  const server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json')
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return res.writeHead(401).end('{"title":"Unauthorized","status":401,"detail":"no"}')
    if (req.method === 'POST' && req.url === '/internal/v1/reconcile') {
      let body = ''
      req.on('data', (d: Buffer) => { body += d.toString() })
      req.on('end', () => res.writeHead(202).end(JSON.stringify({ id: RUN, dry_run: JSON.parse(body).dry_run, state: 'running' })))
      return
    }
    if (req.url === `/internal/v1/reconcile/${RUN}`) {
      polls++
      const done = polls >= 3
      const report = { id: RUN, dry_run: true, state: done ? (fail ? 'failed' : 'done') : 'running', started_at: new Date().toISOString(), finished_at: null }
      const progress = { checked: done ? 20 : polls * 5, total: 20, counts: done ? { rhsm_orphan: 1 } : {} }
      return res.writeHead(200).end(JSON.stringify({ ...report, ...progress, drift: done ? drift : [], error: fail && done ? 'RHSM answered 500' : null }))
    }
    res.writeHead(404).end('{"title":"Not Found","status":404}')
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  const env = { CLOUDOREG_URL: `http://127.0.0.1:${(server.address() as { port: number }).port}`, CLOUDOREG_TOKEN: TOKEN }

  const run = await inProcess(['reconcile'], env, true)
  t.equal(run.code, 0, run.stderr)
  t.match(run.stderr, new RegExp(`dry run: nothing is changed: run ${RUN}`))
  t.match(run.bars, /reconcile 0b7f9d4e-[0-9a-f-]+ \[.*\] \d+% \| \d+\/20 \| drift \d+ \| [\d.]+\/s/, 'a live bar with counts and rate')
  t.match(run.stdout, new RegExp(`reconciliation ${RUN} done \\(dry run\\): 20 of 20 checked`))
  t.match(run.stdout, /rhsm_orphan\s+1/)
  t.match(run.stdout, /rhsm_orphan\s+12\s+99\s+7654321\s+source is gone\s+delete the RHSM mapping/)

  polls = 0
  fail = true
  const failed = await inProcess(['reconcile', '--apply', '--json'], env, true)
  t.equal(failed.code, 1)
  t.equal(failed.bars, '', 'no bar with --json')
  t.match(JSON.parse(failed.stdout), { id: RUN, state: 'failed', error: 'RHSM answered 500' })
  t.match(failed.stderr, new RegExp(`reconciling .*: run ${RUN}\\ncloudoreg: reconciliation ${RUN} failed: RHSM answered 500`))
})
