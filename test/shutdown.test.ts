import t from 'tap'
import { leasesOf, pendingWork, startReplicas } from './helpers/replicas.js'
import { eventually, ORG } from './helpers/stack.js'

// SIGTERM on one of two replicas while it runs events: it turns pushes away with 503 and Retry-After,
// lets running attempts end, sends their statuses, gives its leases back and exits 0; the other
// replica does the rest at once, without waiting for a lease to expire.
const SOURCES = 120
const LEASE_MS = 60_000

t.test('a replica told to stop drains, releases its leases and loses nothing', async t => {
  const { sources, rhsm, db, replicas } = await startReplicas(t, 2, { LEASE_MS: String(LEASE_MS), SHUTDOWN_GRACE_MS: '8000', CONCURRENCY: '8' })
  // Slow enough that the stopping replica has attempts running and events still queued.
  rhsm.delayMs = 300
  for (let i = 0; i < SOURCES + 400; i++) {
    sources.addSource({ sourceId: String(i + 1), applicationId: String(30_000 + i), authenticationId: String(300_000 + i), arn: `arn:aws:iam::${500_000_000_000 + i}:role/r` })
  }
  const [stopping, staying] = replicas
  let n = 0
  async function push (url: string): Promise<Response> {
    const i = n++
    return fetch(`${url}/internal/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', event_type: 'ApplicationAuthentication.create', 'x-rh-sources-org-id': ORG, 'webhook-id': `s-${i}` },
      body: JSON.stringify({ id: i, application_id: 30_000 + i, authentication_id: 300_000 + i })
    })
  }
  for (let i = 0; i < SOURCES; i++) t.equal((await push(i % 2 === 0 ? stopping.url : staying.url)).status, 202)
  await eventually(async () => await leasesOf(db, stopping.server.child.pid!) > 0 ? true : undefined, 20_000, 'the stopping replica to hold leases')

  const pid = stopping.server.child.pid!
  const stoppedAt = Date.now()
  stopping.server.child.kill('SIGTERM')
  // Keep pushing at the stopping replica until it stops listening; a bridge resends what it refuses elsewhere.
  const refused: Array<{ status: number, retryAfter: string | null, type: string | null }> = []
  let resent = 0
  while (true) {
    const index = n
    let res: Response
    try {
      res = await push(stopping.url)
    } catch {
      // Not listening any more: that push never reached it.
      n = index
      break
    }
    if (res.status === 202) continue
    refused.push({ status: res.status, retryAfter: res.headers.get('retry-after'), type: res.headers.get('content-type') })
    await res.arrayBuffer()
    n = index
    t.equal((await push(staying.url)).status, 202)
    resent++
  }
  const code = await stopping.server.exited
  const stoppedIn = Date.now() - stoppedAt
  t.equal(code, 0, 'exited cleanly')
  t.ok(refused.length > 0, `pushes during the drain were refused (${refused.length})`)
  t.ok(refused.every(r => r.status === 503 && r.retryAfter === '5' && r.type?.startsWith('application/problem+json') === true),
    'each with 503, Retry-After and a problem body')
  t.equal(await leasesOf(db, pid), 0, 'no lease left behind')

  const releasedAt = Date.now()
  await eventually(async () => {
    const { pending, unsent } = await pendingWork(db)
    return pending === 0 && unsent === 0 ? true : undefined
  }, 60_000, 'the other replica to finish everything')
  const finishedIn = Date.now() - releasedAt
  t.ok(finishedIn < LEASE_MS, 'the other replica did not wait for leases to expire')
  const { rows } = await db.query<{ state: string, n: number }>('select state, count(*)::int as n from inbox group by state')
  t.same(rows, [{ state: 'done', n }], 'every accepted push stored once and processed')
  t.equal(rhsm.mappings.size, n, 'every source mapped')
  const { rows: regs } = await db.query<{ n: number }>('select count(*)::int as n from registrations where state = \'registered\'')
  t.equal(regs[0].n, n)
  const statused = new Set(sources.patches.map(p => p.applicationId))
  t.equal(statused.size, n, 'every source\'s availability reached sources-api')
  t.comment(`SIGTERM → exit in ${stoppedIn} ms; ${refused.length} pushes refused during the drain and sent to the other replica (${resent}); it finished the rest ${finishedIn} ms after the exit`)
})
