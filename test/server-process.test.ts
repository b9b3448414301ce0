import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { alive, ready, startServer } from './helpers/process.js'
import { freePort, pushNative } from './helpers/stack.js'

t.test('bad settings stop start-up with one line per problem, naming each setting and what it accepts, all at once', async t => {
  const server = startServer({ PORT: 'eighty', LOG_LEVEL: 'loud', RHSM_MODE: 'maybe', DATA_DIR: '/nonexistent', DATABSE_URL: 'postgres://x' })
  t.equal(await server.exited, 1)
  const messages = server.output().trim().split('\n').map(line => (JSON.parse(line) as { msg: string }).msg)
  t.same(messages, [
    'DATABSE_URL is not a setting of cloudoreg and is ignored; did you mean DATABASE_URL?',
    'PORT=eighty must be an integer from 0 to 65535',
    'LOG_LEVEL=loud must be one of fatal, error, warn, info, debug, trace, silent',
    'RHSM_MODE=maybe must be one of live, dry-run'
  ])
})

t.test('a busy PORT and an unreachable DATABASE_URL are named, in one line each', async t => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cloudoreg-proc-'))
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))
  const taken = createServer()
  await new Promise<void>(resolve => taken.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { taken.close() })
  const port = (taken.address() as { port: number }).port

  const busy = startServer({ DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1', EMBEDDED_PG_PORT: String(await freePort()) })
  t.equal(await busy.exited, 1)
  t.match(busy.output(), `PORT=${port} is in use by another process (on 127.0.0.1); set it to a free port`)
  t.notMatch(busy.output(), /"stack"/)
  t.notOk(existsSync(join(dataDir, 'pg', 'postmaster.pid')), 'and its embedded PostgreSQL was stopped')

  const unreachable = startServer({ DATABASE_URL: `postgres://cloudoreg:db-password-9x@127.0.0.1:${await freePort()}/cloudoreg`, PORT: '0' })
  t.equal(await unreachable.exited, 1)
  t.match(unreachable.output(), /DATABASE_URL: cannot reach 127\.0\.0\.1:\d+ \(ECONNREFUSED\); check DATABASE_URL and that the database runs/)
  t.notMatch(unreachable.output(), /db-password-9x|"stack"/, 'no password, no stack trace')
})

t.test('production without upstream settings refuses to start', async t => {
  const server = startServer({ NODE_ENV: 'production' })
  t.equal(await server.exited, 1)
  t.match(server.output(), /NODE_ENV=production needs SOURCES_API_URL/)
})

t.test('survives SIGKILL of the Node process while its PostgreSQL keeps running', async t => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cloudoreg-proc-'))
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))
  const env = { DATA_DIR: dataDir, PORT: String(await freePort()), EMBEDDED_PG_PORT: String(await freePort()), HOST: '127.0.0.1' }
  const url = `http://127.0.0.1:${env.PORT}`

  const first = startServer(env)
  t.teardown(() => { first.child.kill('SIGKILL') })
  await ready(url)
  t.match(first.output(), /events will be stored but not processed until SOURCES_API_URL, SOURCES_PSK, RHSM_API_URL are configured/)
  t.equal((await pushNative(url, 'ApplicationAuthentication.create', { application_id: 42, authentication_id: 311 })).status, 202)

  first.child.kill('SIGKILL')
  await first.exited
  const pidFile = join(dataDir, 'pg', 'postmaster.pid')
  t.ok(existsSync(pidFile), 'PostgreSQL left its pid file')
  const orphan = Number(readFileSync(pidFile, 'utf8').split('\n')[0])
  t.ok(alive(orphan), 'and is still running')

  const second = startServer(env)
  t.teardown(() => { second.child.kill('SIGKILL') })
  await ready(url)
  t.match(second.output(), /embedded PostgreSQL left running by a previous process/)
  t.notOk(alive(orphan), 'the orphan was stopped')
  const metrics = await (await fetch(`${url}/metrics`)).text()
  t.match(metrics, /cloudoreg_inbox_pending 1\b/, 'the event accepted before the kill is still there')

  second.child.kill('SIGTERM')
  t.equal(await second.exited, 0, 'SIGTERM closes cleanly')
  t.notOk(existsSync(pidFile), 'and stops PostgreSQL')
})
