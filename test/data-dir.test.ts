import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startFakeRhsm } from './helpers/fake-rhsm.js'
import { startFakeSources } from './helpers/fake-sources.js'
import { startFakeSts } from './helpers/fake-sts.js'
import { alive, ready, startServer, upstreamEnv, type ServerProcess } from './helpers/process.js'
import { eventually, freePort, PSK, pushNative } from './helpers/stack.js'

interface Started { server: ServerProcess, dataDir: string, env: Record<string, string>, url: string, postgres: number }

/** A server process on a data directory of its own, ready, with its PostgreSQL's PID. */
async function startReady (t: { teardown: (fn: () => void) => void }, extraEnv: Record<string, string> = {}): Promise<Started> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cloudoreg-datadir-'))
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))
  const env = { DATA_DIR: dataDir, PORT: String(await freePort()), EMBEDDED_PG_PORT: String(await freePort()), HOST: '127.0.0.1' }
  const url = `http://127.0.0.1:${env.PORT}`
  const server = startServer({ ...env, ...extraEnv })
  t.teardown(() => { server.child.kill('SIGKILL') })
  await ready(url)
  const postgres = Number(readFileSync(join(dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0])
  return { server, dataDir, env, url, postgres }
}

async function healthProblem (url: string, what: string): Promise<{ detail: string }> {
  return eventually(async () => {
    const res = await fetch(`${url}/healthz`)
    return res.status === 503 ? await res.json() as { detail: string } : undefined
  }, 20_000, `/healthz to report ${what}`)
}

t.test('a second cloudoreg on the same data directory refuses to start, names the PID, and touches nothing', async t => {
  const { server: first, dataDir, env, url, postgres } = await startReady(t)

  const second = startServer({ ...env, PORT: String(await freePort()) })
  t.teardown(() => { second.child.kill('SIGKILL') })
  t.equal(await second.exited, 1, 'the second one exits')
  const lines = second.output().trim().split('\n')
  t.equal(lines.length, 1, 'with one line')
  t.match(lines[0], `DATA_DIR ${dataDir} is in use by another cloudoreg (PID ${first.child.pid})`)
  t.notMatch(second.output(), /left running|stopping it/, 'it took nothing for a leftover')

  t.ok(alive(postgres), "the first one's PostgreSQL still runs")
  t.equal(readFileSync(join(dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0], String(postgres))
  t.equal((await fetch(`${url}/healthz`)).status, 200)
  t.equal((await pushNative(url, 'ApplicationAuthentication.create', { application_id: 42, authentication_id: 311 })).status, 202, 'the first one still stores events')

  first.child.kill('SIGTERM')
  t.equal(await first.exited, 0)
  t.notOk(existsSync(join(dataDir, 'cloudoreg.lock')), 'a clean stop gives the directory back')
})

t.test('when its database dies, /healthz says so and the log says it once, in words', async t => {
  const [sources, rhsm, sts] = await Promise.all([startFakeSources({ psk: PSK }), startFakeRhsm(), startFakeSts()])
  t.teardown(() => Promise.all([sources.close(), rhsm.close(), sts.close()]))
  const { server, url, postgres } = await startReady(t, upstreamEnv({ sources, rhsm, sts }))
  process.kill(postgres, 'SIGKILL')

  const problem = await healthProblem(url, 'the lost database')
  t.match(problem.detail, /the database does not answer/)
  // Several of the dispatcher's polls later, still one line, and no stack trace per poll.
  await new Promise(resolve => setTimeout(resolve, 3000))
  const output = server.output()
  t.equal(output.match(/database lost/g)?.length, 1, 'the loss is logged once')
  t.notMatch(output, /reading the inbox failed|renewing leases failed/)
  t.notMatch(output.slice(output.indexOf('database lost')), /"stack"/, 'no stack trace after the loss was told')
  t.equal((await fetch(`${url}/api/cloudoreg/v1/sources`, { headers: { 'x-rh-identity': Buffer.from(JSON.stringify({ identity: { org_id: '1', type: 'User' } })).toString('base64') } })).status, 503,
    'the status API answers 503, not 500')
})

t.test('when its data directory disappears, /healthz says so', async t => {
  const { server, dataDir, url, postgres } = await startReady(t)
  // The server keeps running on deleted files; only the test can stop it now.
  t.teardown(() => { try { process.kill(postgres, 'SIGKILL') } catch {} })
  rmSync(dataDir, { recursive: true, force: true })

  const problem = await healthProblem(url, 'the lost data directory')
  t.match(problem.detail, `the data directory ${dataDir} is gone`)
  t.match(server.output(), `database lost: the data directory ${dataDir} is gone`)
})
