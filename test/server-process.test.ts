import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { alive, ready, startServer } from './helpers/process.js'
import { freePort, pushNative } from './helpers/stack.js'

t.test('a bad setting stops start-up with a message naming the variable', async t => {
  const server = startServer({ PORT: 'eighty', DATA_DIR: '/nonexistent' })
  t.equal(await server.exited, 1)
  t.match(server.output(), /Invalid configuration: PORT must be integer/)
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
