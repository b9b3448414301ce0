import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import type { ConfigError } from '../src/config-error.js'
import { loadConfig, misspeltSettings } from '../src/config.js'
import { startupProblems } from '../src/startup-errors.js'
import { DataDirInUseError, lockDataDir } from '../src/store/data-dir-lock.js'

t.test('a variable a few letters away from a setting is warned about; others are not', async t => {
  t.same(misspeltSettings({ LOG_LEVL: 'debug', SOURCES_API_ULR: 'http://x', HOME: '/root', PATH: '/bin', PORT: '1', lowercase_thing: 'x', XYZ: '1' }), [
    'LOG_LEVL is not a setting of cloudoreg and is ignored; did you mean LOG_LEVEL?',
    'SOURCES_API_ULR is not a setting of cloudoreg and is ignored; did you mean SOURCES_API_URL?'
  ])
})

function problemsOf (env: Record<string, string>): string[] {
  try {
    loadConfig(env)
  } catch (err) {
    return (err as ConfigError).problems
  }
  return []
}

t.test('every cross-setting problem at once, one line each', async t => {
  t.same(problemsOf({ STATUS_SINK: 'kafka', RHSM_CLIENT_CERT: '/c.pem', KAFKA_CONSUME: 'true', DATABASE_CA_PATH: '/ca.pem' }), [
    'DATABASE_CA_PATH needs DATABASE_URL (the embedded PostgreSQL uses no TLS)',
    'STATUS_SINK=kafka needs KAFKA_BROKERS',
    'RHSM_CLIENT_CERT and RHSM_CLIENT_KEY go together',
    'KAFKA_CONSUME=true needs KAFKA_BROKERS'
  ])
  t.same(problemsOf({ KAFKA_SSL: 'maybe', CONCURRENCY: '0', UPSTREAM_TIMEOUT_MS: '1', PUSH_TOKEN: 'short' }), [
    'KAFKA_SSL=maybe must be true or false',
    'PUSH_TOKEN must be at least 32 characters',
    'CONCURRENCY=0 must be an integer from 1 to 1024',
    'UPSTREAM_TIMEOUT_MS=1 must be an integer of at least 100'
  ], 'secrets are named, never quoted')
})

t.test('start-up failures a setting fixes become one line naming it; others keep their stack', async t => {
  const embedded = loadConfig({ PORT: '8000', METRICS_PORT: '9000' })
  t.same(startupProblems(Object.assign(new Error('listen EACCES'), { code: 'EACCES', port: 9000 }), embedded),
    ['METRICS_PORT=9000 needs privileges this process lacks (on 0.0.0.0); set it to a free port'])
  t.same(startupProblems(new Error('embedded PostgreSQL did not start on port 54329: ... could not bind IPv4 address'), embedded),
    ['EMBEDDED_PG_PORT=54329 is in use by another process; set EMBEDDED_PG_PORT to a free port'])
  const external = loadConfig({ DATABASE_URL: 'postgres://u:pw@db.example:5432/cloudoreg' })
  t.same(startupProblems(Object.assign(new Error('password authentication failed'), { code: '28P01' }), external),
    ['DATABASE_URL: db.example:5432 answers, but the password was refused; correct DATABASE_URL'])
  t.same(startupProblems(Object.assign(new Error('getaddrinfo ENOTFOUND db.example'), { code: 'ENOTFOUND' }), external),
    ['DATABASE_URL: cannot reach db.example:5432 (ENOTFOUND); check DATABASE_URL and that the database runs'])
  t.equal(startupProblems(new TypeError('a bug'), external), undefined)
  t.equal(startupProblems(new TypeError('a bug')), undefined, 'before the configuration is read')
})

t.test('the data-directory lock: held by a live process, taken over from a dead or reused PID', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'cloudoreg-lock-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const lockFile = join(dir, 'cloudoreg.lock')

  const mine = await lockDataDir(dir)
  t.equal(mine.stale, false)
  t.match(JSON.parse(readFileSync(lockFile, 'utf8')), { pid: process.pid })
  await mine.release()

  // PID 1 is alive; with its real start time it holds the directory, with another it is a reused PID.
  const init = readFileSync('/proc/1/stat', 'utf8')
  const started = init.slice(init.lastIndexOf(')') + 2).split(' ')[19]
  writeFileSync(lockFile, JSON.stringify({ pid: 1, started }))
  await t.rejects(lockDataDir(dir), new DataDirInUseError(dir, 1))
  writeFileSync(lockFile, JSON.stringify({ pid: 1, started: '1' + started }))
  t.equal((await lockDataDir(dir)).stale, true, 'a PID reused by another process')
  writeFileSync(lockFile, JSON.stringify({ pid: 2 ** 22 + 1 }))
  t.equal((await lockDataDir(dir)).stale, true, 'a dead PID')
  writeFileSync(lockFile, 'not json')
  const taken = await lockDataDir(dir)
  t.equal(taken.stale, true, 'an unreadable lock')
  writeFileSync(lockFile, JSON.stringify({ pid: 1, started }))
  await taken.release()
  t.match(readFileSync(lockFile, 'utf8'), '"pid":1', 'release leaves a lock that is not ours')
})
