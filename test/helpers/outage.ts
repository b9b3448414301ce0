import type { FakeHttpServer } from './fake-http.js'
import { createRecord, eventually, getJson, startStack, type Stack } from './stack.js'

/** Settings that make an outage many times longer than an event's whole retry budget (2 attempts, 50–100 ms apart). */
export const OUTAGE_ENV = {
  CONCURRENCY: '32',
  UPSTREAM_CALL_ATTEMPTS: '1',
  RETRY_MAX_ATTEMPTS: '2',
  RETRY_BASE_DELAY_MS: '50',
  RETRY_MAX_DELAY_MS: '100',
  BREAKER_MIN_CALLS: '5',
  BREAKER_WINDOW_MS: '2000',
  BREAKER_OPEN_MS: '500',
  LOG_LEVEL: 'info'
}
export const OPEN_MS = Number(OUTAGE_ENV.BREAKER_OPEN_MS)

export type Upstream = 'rhsm' | 'sources' | 'sts'

export interface OutageFigures {
  events: number
  /** Requests that reached the failing upstream between the breaker opening and the outage's end. */
  probes: number
  openSeconds: number
  outageSeconds: number
  attemptsWhileOpen: number
  attemptsAtEnd: number
  drainSeconds: number
}

type Tap = Pick<typeof import('tap').default, 'equal' | 'ok' | 'same' | 'match' | 'comment' | 'teardown'>

const app = (i: number): number => 20_000 + i
const auth = (i: number, k: number): string => String(30_000 + i * 10 + k)
const account = (i: number, k: number): string => String(400_000_000_000 + i * 10 + k)
const SOURCE = '/api/cloudoreg/v1/sources'

/**
 * `sources` sources, `perSource` ApplicationAuthentication.create events each (each links a new role
 * in a new AWS account, so that STS's and RHSM's requests reveal the order), pushed while `upstream`
 * answers 503 to everything, until `outageMs` after every source's first event waits at its gate. Checks: nothing dead, no
 * CR5000, attempts unchanged while open, only spaced probes reach the upstream while open, all
 * registered on their last account after recovery, per-source order kept at STS and RHSM.
 */
export async function outage (t: Tap, upstream: Upstream, sources: number, perSource: number, outageMs: number): Promise<OutageFigures> {
  const stack = await startStack(t, { env: OUTAGE_ENV })
  const key = upstream === 'sts' ? `sts:${stack.config.AWS_REGION}` : upstream
  const down: FakeHttpServer = stack[upstream]
  const gate = stack.app.upstreamGates.get(key)!
  for (let i = 0; i < sources; i++) {
    stack.sources.addSource({ sourceId: String(i + 1), applicationId: String(app(i)), authenticationId: auth(i, 0), arn: `arn:aws:iam::${account(i, 0)}:role/r` })
    for (let k = 1; k < perSource; k++) stack.sources.addRole(auth(i, 0), auth(i, k), `arn:aws:iam::${account(i, k)}:role/r`)
  }
  down.outage = 503
  const records: Array<Record<string, unknown>> = []
  for (let k = 0; k < perSource; k++) for (let i = 0; i < sources; i++) records.push(createRecord(records.length, app(i), Number(auth(i, k))))
  for (let from = 0; from < records.length; from += 500) {
    const res = await fetch(`${stack.url}/internal/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ records: records.slice(from, from + 500) }) })
    t.equal(res.status, 202)
  }
  const query = async <T>(sql: string): Promise<T[]> => (await stack.app.store.pool.query(sql)).rows
  const attempts = async (): Promise<number> => (await query<{ n: number }>('select coalesce(sum(attempts), 0)::int as n from inbox'))[0].n

  // Every source's first event waits at the gate (but the one let through to probe).
  await eventually(() => gate.stats().state !== 'closed' && gate.stats().waiting >= sources - 1 ? true : undefined, 120_000, `${sources} events waiting for ${key}`)
  const openedAt = logTime(stack, `upstream ${key} failing: circuit opened`)
  // The attempts spent before the breaker opened are written once their failure is handled: read until stable.
  let before = -1
  const whileOpen = await eventually(async () => {
    const now = await attempts()
    const stable = now === before ? now : undefined
    before = now
    return stable
  }, 30_000, 'attempts written')

  const metrics = await (await fetch(`${stack.url}/metrics`)).text()
  t.match(metrics, new RegExp(`cloudoreg_upstream_breaker_state\\{target="${key}"\\} [12]\\n`), 'the breaker shows open (or probing)')
  const waitingMetric = Number(new RegExp(`cloudoreg_upstream_waiting_events\\{target="${key}"\\} (\\d+)`).exec(metrics)?.[1])
  t.ok(waitingMetric >= sources - 1, `waiting events shown: ${waitingMetric}`)
  t.equal((await fetch(`${stack.url}/readyz`)).status, 200, '/readyz stays up')
  // What an operator (GET /internal/v1/events/{id}) and, once the source is known, the status API say.
  const note = new RegExp(`^waiting for upstream ${key}, no attempt spent`)
  const last = await eventually(async () => {
    const e = await stack.app.store.inbox.get(sources)
    return note.test(e?.lastError ?? '') ? e!.lastError : undefined
  }, 30_000, 'the event to say why it waits')
  t.comment(`an operator reads: ${last}`)
  if (upstream !== 'sources') {
    const { body } = await eventually(async (): Promise<{ body: any } | undefined> => {
      const res: { status: number, body: any } = await getJson(`${stack.url}${SOURCE}/${sources}`)
      return note.test(res.body?.waiting?.reason ?? '') ? res : undefined
    }, 30_000, 'the status API to say why the source waits')
    t.match(body, { state: 'pending' }, `the status API says why: ${body.waiting.reason}`)
  }

  // Long after the last event parked (which takes a while: each calls the upstreams before this one first).
  const allParkedAt = Date.now()
  await eventually(() => Date.now() >= Math.max(openedAt, allParkedAt) + outageMs ? true : undefined, outageMs + 10_000, 'the outage to last')
  t.equal(await attempts(), whileOpen, 'no attempt spent while the breaker was open')
  t.same(await query("select id from inbox where state = 'dead'"), [], 'nothing dead during the outage')
  const recoveredAt = Date.now()
  down.outage = null

  await eventually(async () => (await query<{ n: number }>("select count(*)::int as n from inbox where state = 'pending'"))[0].n === 0 ? true : undefined, 120_000, 'every event done')
  const drainSeconds = (Date.now() - recoveredAt) / 1000

  t.same(await query('select state, count(*)::int as n from inbox group by state'), [{ state: 'done', n: sources * perSource }], 'every event done, none dead')
  t.same(await query("select source_id from registrations where last_error_code = 'CR5000' or state <> 'registered'"), [], 'no CR5000: every source registered')
  let wrong = 0
  for (let i = 0; i < sources; i++) if (stack.rhsm.mappings.get(String(i + 1))?.awsAccountId !== account(i, perSource - 1)) wrong++
  t.equal(wrong, 0, 'each source mapped in RHSM to its last account')
  t.equal(orderViolations(stack), 0, 'zero order violations at STS and RHSM')

  // While open, only probes reach the upstream: one at a time, at least BREAKER_OPEN_MS apart.
  const probes = down.requests.filter(r => r.at > openedAt + OPEN_MS / 2 && r.at < recoveredAt).map(r => r.at)
  const closest = Math.min(...probes.slice(1).map((at, n) => at - probes[n]))
  t.ok(probes.length >= 1 && probes.length <= (recoveredAt - openedAt) / OPEN_MS + 1, `${probes.length} probes in ${((recoveredAt - openedAt) / 1000).toFixed(1)} s open`)
  t.ok(probes.length < 2 || closest >= OPEN_MS * 0.9, `probes spaced by BREAKER_OPEN_MS (closest ${closest} ms apart)`)
  t.equal(stack.logs.filter(l => l.includes(`upstream ${key} failing: circuit opened`)).length, 1, 'one log line when it opened')
  t.equal(stack.logs.filter(l => l.includes(`upstream ${key} answers again: circuit closed`)).length, 1, 'one log line when it closed')
  const after = await (await fetch(`${stack.url}/metrics`)).text()
  t.match(after, new RegExp(`cloudoreg_upstream_breaker_state\\{target="${key}"\\} 0\\n`), 'closed again')
  const openSeconds = Number(new RegExp(`cloudoreg_upstream_breaker_open_seconds_total\\{target="${key}"\\} ([\\d.]+)`).exec(after)?.[1])
  t.ok(openSeconds >= (recoveredAt - openedAt) / 1000 * 0.9, `time open counted: ${openSeconds} s`)
  t.match(after, new RegExp(`cloudoreg_upstream_waiting_events\\{target="${key}"\\} 0\\n`), 'nobody waiting')
  const figures = {
    events: sources * perSource,
    probes: probes.length,
    openSeconds,
    outageSeconds: (recoveredAt - openedAt) / 1000,
    attemptsWhileOpen: whileOpen,
    attemptsAtEnd: await attempts(),
    drainSeconds
  }
  t.comment(`${key} down: ${figures.events} events over ${sources} sources; open ${figures.outageSeconds.toFixed(1)} s (RETRY budget about 0.1 s); ` +
    `${figures.probes} probes reached it while open; attempts ${figures.attemptsWhileOpen} when it opened and when it recovered, ${figures.attemptsAtEnd} at the end; ` +
    `all registered ${figures.drainSeconds.toFixed(1)} s after recovery; 0 CR5000, 0 dead, 0 order violations`)
  return figures
}

/** When the service logged a line containing `text` (its pino `time`). */
function logTime (stack: Stack, text: string): number {
  const line = stack.logs.find(l => l.includes(text))
  if (line === undefined) throw new Error(`no log line says ${text}`)
  return (JSON.parse(line) as { time: number }).time
}

/** Per source, the accounts STS was asked to assume and RHSM to map must come in event order (repeats allowed). */
function orderViolations (stack: Stack): number {
  const seen = new Map<string, number>()
  let violations = 0
  const check = (accountId: string): void => {
    const n = Number(accountId) - 400_000_000_000
    const source = String(Math.floor(n / 10))
    const k = n % 10
    if ((seen.get(`${source}`) ?? -1) > k) violations++
    seen.set(source, Math.max(k, seen.get(source) ?? -1))
  }
  for (const call of stack.sts.calls) {
    const m = /^arn:aws:iam::(\d{12}):/.exec(call.params.RoleArn ?? '')
    if (call.action === 'AssumeRole' && m !== null) check(m[1])
  }
  seen.clear()
  for (const r of stack.rhsm.requests) {
    if (r.method === 'POST' && Array.isArray(r.body)) for (const item of r.body as Array<{ id: string }>) check(item.id)
  }
  return violations
}
