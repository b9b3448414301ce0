import { spawn } from 'node:child_process'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import type pg from 'pg'
import t from 'tap'
import { KNOWN_EVENT_TYPES } from '../src/metrics.js'
import { createRecord, eventually, ORG, startBareApp } from './helpers/stack.js'

const TOKEN = 'push-token-bounded-0123456789abcdef'
const POOL_SIZE = 3
const logs: string[] = []
let app: FastifyInstance
t.before(async () => {
  app = await startBareApp(t, { PUSH_TOKEN: TOKEN, LOG_LEVEL: 'info', DATABASE_POOL_SIZE: String(POOL_SIZE), DATABASE_TIMEOUT_MS: '1000' }, logs)
})

const push = (payload: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> => app.inject({
  method: 'POST',
  url: '/internal/v1/events',
  headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}`, ...headers },
  payload
})

/** A record batch of `count` ApplicationAuthentication.create records from `offset` on, with `type` as event type when given. */
function recordBatch (offset: number, count: number, type?: (i: number) => string): string {
  return JSON.stringify({
    records: Array.from({ length: count }, (_, i) => {
      const r = createRecord(offset + i, offset + i, offset + i)
      if (type === undefined) return r
      return { ...r, headers: [{ key: 'event_type', value: Buffer.from(type(offset + i)).toString('base64') }, (r.headers as unknown[])[1]] }
    })
  })
}

t.test('20,000 made-up event types: /metrics names the known types and `other`, nothing else', async t => {
  for (let batch = 0; batch < 20; batch++) {
    // Resent while shed (503), as a bridge would: a loaded machine can trip the event-loop check.
    const res = await eventually(async () => {
      const r = await push(recordBatch(batch * 1000, 1000, i => `Made.up${i}`))
      return r.statusCode === 503 ? undefined : r
    }, 60_000, 'the batch to be taken')
    t.equal(res.statusCode, 202)
  }
  t.equal((await push(recordBatch(50_000, 1))).statusCode, 202)
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  const received = res.body.split('\n').filter(l => l.startsWith('cloudoreg_events_received_total{'))
  t.same(received.sort(), ['cloudoreg_events_received_total{type="ApplicationAuthentication.create"} 1', 'cloudoreg_events_received_total{type="other"} 20000'])
  const types = new Set([...res.body.matchAll(/^cloudoreg_\w+\{(?:[^}]*,)?type="([^"]*)"/gm)].map(m => m[1]))
  t.ok([...types].every(type => type === 'other' || KNOWN_EVENT_TYPES.has(type)), 'no label outside the closed set')
  t.comment(`/metrics after 20,000 distinct event types: ${res.body.length} bytes, ${types.size} type labels`)
})

t.test('a logged delivery id is cut to 64 characters', async t => {
  // The longest id the edge accepts (512 bytes: it becomes a btree key); still far more than a log line needs.
  const id = 'd'.repeat(512)
  t.equal((await push(JSON.stringify({ application_id: 1 }), { event_type: 'Application.update', 'x-rh-sources-org-id': ORG, 'webhook-id': id })).statusCode, 202)
  const line = logs.map(l => JSON.parse(l)).find(l => l.msg === 'events pushed' && l.deliveryIds?.[0]?.startsWith('ddd'))
  t.same(line.deliveryIds, ['d'.repeat(64)])
  t.notOk(logs.some(l => l.includes('d'.repeat(65))), 'the whole id is nowhere in the log')
})

t.test('heap load shedding acts below the heap limit the process runs with', async t => {
  const child = spawn(process.execPath, ['--max-old-space-size=256', '--import', '@tapjs/typescript/import', 'test/helpers/heap-pressure.ts'], {
    env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  let output = ''
  child.stdout.on('data', (d: Buffer) => { output += d.toString() })
  await new Promise(resolve => child.on('exit', resolve))
  const result = JSON.parse(output.trim().split('\n').at(-1)!)
  const mb = (n: number): string => (n / 2 ** 20).toFixed(0)
  t.comment(`heap limit ${mb(result.limit)} MB (--max-old-space-size=256), threshold ${mb(result.threshold)} MB, heap used ${mb(result.heapUsed)} MB`)
  t.ok(result.threshold < result.limit, 'the threshold is under the limit')
  t.equal(result.status, 503, 'a push over the threshold is shed')
  t.match(JSON.parse(result.body), { detail: /memory is over its limit/ })
})

t.test('a database that gives no connection: appends wait a bounded time, the queue is bounded, nothing hangs', async t => {
  const held: pg.PoolClient[] = []
  for (let i = 0; i < POOL_SIZE; i++) held.push(await app.store.pool.connect())
  const answers: LightMyRequestResponse[] = []
  // 25 batches of 1,000: one is being written, 20,000 events may wait; the rest are refused at once.
  const pushes = Array.from({ length: 25 }, (_, i) => push(recordBatch(100_000 + i * 1000, 1000)).then(res => { answers.push(res) }))
  try {
    const busy = await eventually(() => {
      const refused = answers.filter(a => a.statusCode === 503 && /busy/.test(a.json().detail))
      return refused.length >= 4 ? refused : undefined
    }, 10_000, 'appends over the queue bound to be refused')
    t.equal(busy[0].headers['retry-after'], '5')
    await eventually(() => answers.length === 25 ? true : undefined, 15_000, 'every push to be answered while the pool is held')
  } finally {
    for (const client of held) client.release()
  }
  await Promise.all(pushes)
  t.same(answers.map(a => a.statusCode), Array(25).fill(503), 'each answered 503: a sender retries')
  t.comment(`answers while the pool was held: ${answers.filter(a => /busy/.test(a.json().detail)).length} refused as busy, ` +
    `${answers.filter(a => !/busy/.test(a.json().detail)).length} timed out waiting for the database`)
  const { rows } = await app.store.pool.query<{ n: number }>('select count(*)::int as n from inbox where (body->>\'application_id\')::int >= 100000')
  t.equal(rows[0].n, 0, 'nothing of them stored')
  // The health checks that saw the pool exhausted shed pushes until their next round (a second or two),
  // answering 503 as a sender retries: the first retries after that are stored.
  const again = await eventually(async () => {
    const res = await push(recordBatch(200_000, 10))
    return res.statusCode === 503 ? undefined : res
  }, 15_000, 'a push to be accepted once connections are back')
  t.equal(again.statusCode, 202, 'with connections back, pushes are stored again', { detail: again.body })
})
