import fc from 'fast-check'
import type { LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { injectPastShedding, startBareApp } from './helpers/stack.js'

// Hostile and broken input across the routes that take any: every answer is a
// 2xx or a 4xx problem+json (413 when oversized), never a 5xx; a rejected
// request stores nothing; the process stays up and no prototype is polluted.

const TOKEN = 'internal-token-fuzz-0123456789abcdef'
// Fixed by default so that CI is repeatable; FUZZ_SEED=<n> explores elsewhere (the seed is printed).
const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : 20261128
t.comment(`fast-check seed ${seed}`)
fc.configureGlobal({ seed })
const b64 = (s: string): string => Buffer.from(s).toString('base64')

const deep = fc.integer({ min: 50, max: 5000 }).map(n => '['.repeat(n) + ']'.repeat(n))
const pollution = fc.constantFrom(
  '{"__proto__":{"polluted":1},"application_id":1}',
  '{"constructor":{"prototype":{"polluted":1}}}',
  '[{"__proto__":{"polluted":1}}]',
  '{"records":[{"topic":"t","partition":0,"offset":1,"value":{"__proto__":{"polluted":1}},"headers":[{"key":"__proto__","value":"eA=="}]}]}'
)
const bodies = fc.oneof(
  fc.string(),
  fc.json(),
  fc.jsonValue().map(v => JSON.stringify(v)),
  deep,
  pollution,
  fc.string({ minLength: 1000, maxLength: 20000 }),
  fc.constantFrom('', '{', 'null', '[]', '{"records":[]}', '{"records":[1]}', '{"records":"x"}', '\u0000\u0001', '{"a":1}'.repeat(3))
)
const identities = fc.oneof(
  fc.string(),
  fc.string().map(b64),
  fc.jsonValue().map(v => b64(JSON.stringify(v))),
  fc.constantFrom(
    b64('{"identity":"not an object"}'),
    b64('{"identity":null}'),
    b64('{"identity":[]}'),
    b64('{"identity":{"org_id":42}}'),
    b64('{"identity":{"org_id":"a b"}}'),
    b64('{"__proto__":{"identity":{"org_id":"1"}}}'),
    b64('{"identity":{"org_id":"7654321"}}'),
    '%%%'
  )
)
const contentTypes = fc.constantFrom(undefined, 'application/json', 'application/cloudevents+json', 'application/cloudevents-batch+json',
  'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=latin1', '*/*', 'garbage')
const maybe = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(arb, { nil: undefined })

const pushHeaders = fc.record({
  'content-type': contentTypes,
  event_type: maybe(fc.oneof(fc.string(), fc.constantFrom('ApplicationAuthentication.create', 'Source.destroy', 'a'.repeat(500)))),
  'x-rh-sources-org-id': maybe(fc.oneof(fc.string(), fc.constantFrom('7654321', '__proto__'))),
  'x-rh-identity': maybe(identities),
  'ce-id': maybe(fc.string()),
  'ce-source': maybe(fc.string()),
  'ce-kafkaheadereventtype': maybe(fc.string()),
  'webhook-id': maybe(fc.string())
})

function clean (headers: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {}
  // HTTP cannot carry every string in a header; what it cannot carry never reaches a server.
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && /^[\t\x20-\x7e]*$/.test(v)) out[k] = v
  return out
}

t.test('at least 10,000 malformed requests: 4xx problem+json or success, never 5xx, nothing stored when rejected', async t => {
  const app = await startBareApp(t, { INTERNAL_TOKEN: TOKEN, LOG_LEVEL: 'silent' })
  const stored = async (): Promise<number> => (await app.store.pool.query('select count(*)::int as n from inbox')).rows[0].n
  let requests = 0
  const statuses = new Map<number, number>()
  const problems: string[] = []

  function judge (res: LightMyRequestResponse, what: string): void {
    requests++
    statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
    if (res.statusCode >= 500) problems.push(`${what} → ${res.statusCode} ${res.body.slice(0, 200)}`)
    if (res.statusCode >= 400 && !/application\/problem\+json/.test(String(res.headers['content-type']))) problems.push(`${what} → ${res.statusCode} is not problem+json`)
  }

  await fc.assert(fc.asyncProperty(pushHeaders, bodies, async (headers, body) => {
    const before = await stored()
    const res = await app.inject({ method: 'POST', url: '/internal/v1/events', headers: clean(headers), payload: body })
    judge(res, `push ${JSON.stringify(clean(headers))} ${JSON.stringify(body.slice(0, 300))}`)
    if (res.statusCode >= 400) return (await stored()) === before
    return res.statusCode === 200 || res.statusCode === 202
  }), { numRuns: 6000 })

  // A Content-Type that is not a media type at all is refused (415) before its body is read.
  const mediaTypes = contentTypes.filter(type => type !== 'garbage')
  await fc.assert(fc.asyncProperty(fc.integer({ min: 4 * 1024 * 1024 + 1, max: 6 * 1024 * 1024 }), mediaTypes, async (size, type) => {
    const before = await stored()
    const res = await app.inject({ method: 'POST', url: '/internal/v1/events', headers: clean({ 'content-type': type }), payload: Buffer.alloc(size, 'x') })
    judge(res, 'oversized push')
    return res.statusCode === 413 && (await stored()) === before
  }), { numRuns: 20 })

  const query = fc.record({ limit: maybe(fc.oneof(fc.string(), fc.integer())), offset: maybe(fc.oneof(fc.string(), fc.integer())), state: maybe(fc.string()) })
  await fc.assert(fc.asyncProperty(identities, query, fc.oneof(fc.string(), fc.nat().map(String)), async (identity, q, sourceId) => {
    const search = new URLSearchParams(Object.entries(q).filter(([, v]) => v !== undefined).map(([k, v]) => [k, String(v)]))
    const headers = clean({ 'x-rh-identity': identity })
    for (const url of [`/api/cloudoreg/v1/sources?${search}`, `/api/cloudoreg/v1/sources/${encodeURIComponent(sourceId)}`, `/api/cloudoreg/v1/sources/${encodeURIComponent(sourceId)}/history`]) {
      const res = await app.inject({ method: 'GET', url, headers })
      judge(res, `GET ${url}`)
      if (![200, 400, 401, 404].includes(res.statusCode)) return false
    }
    return true
  }), { numRuns: 1000 })

  await fc.assert(fc.asyncProperty(fc.record({ 'content-type': contentTypes, 'x-rh-identity': maybe(identities), 'x-rh-sources-org-id': maybe(fc.string()) }), bodies, async (headers, body) => {
    const before = await stored()
    const res = await app.inject({ method: 'POST', url: '/internal/api/cloudoreg/v1/availability_status', headers: clean(headers), payload: body })
    judge(res, 'availability check')
    if (res.statusCode >= 400) return (await stored()) === before
    return res.statusCode === 204
  }), { numRuns: 1000 })

  await fc.assert(fc.asyncProperty(fc.oneof(fc.string(), fc.integer().map(String)), maybe(fc.string()), async (id, token) => {
    const headers = clean({ authorization: token === undefined ? `Bearer ${TOKEN}` : `Bearer ${token}` })
    const before = await stored()
    for (const [method, url] of [['POST', `/internal/v1/events/${encodeURIComponent(id)}/replay`], ['POST', `/internal/v1/sources/${encodeURIComponent(id)}/reverify`], ['GET', `/internal/v1/dead-letters?limit=${encodeURIComponent(id)}`]] as const) {
      const res = await app.inject({ method, url, headers })
      judge(res, `${method} ${url}`)
      if (res.statusCode >= 400 && (await stored()) !== before) return false
    }
    return true
  }), { numRuns: 500 })

  t.same(problems.slice(0, 10), [], 'no 5xx, every 4xx is problem+json')
  t.ok(requests >= 10_000, `${requests} requests sent`)
  t.comment(`answers: ${JSON.stringify(Object.fromEntries([...statuses].sort(([a], [b]) => a - b)))}`)
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype polluted')
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'still up')
})

// Poison that gets past every other check and reaches the store: well-formed events whose strings hold
// what PostgreSQL refuses, arrays wider than a spread can take, delivery ids and record coordinates of
// any size and type. Oracle: PostgreSQL itself (`$1::jsonb`): what it refuses must be a 400 naming the
// place, what it takes must be stored; never a 5xx, and one push's poison never fails another's.
const escapes = fc.constantFrom('\\u0000', '\\ud800', '\\udbff', '\\udc00', '\\udfff', '\\ud83d\\ude00', 'x', '\\n', 'é', '\\"')
const poisonText = fc.array(escapes, { minLength: 1, maxLength: 6 }).map(parts => parts.join(''))
const poisonBodies = fc.tuple(fc.jsonValue({ maxDepth: 3 }), poisonText, poisonText, fc.boolean()).map(([v, a, b, inKey]) => inKey
  ? `{"application_id":1,"authentication_id":2,"${a}":${JSON.stringify(v)}}`
  : `{"application_id":1,"authentication_id":2,"v":${JSON.stringify(v)},"s":[{"t":"${a}"},"${b}"]}`)
// Lengths drawn evenly (fc.string alone rarely goes past a few dozen characters).
const printable = (min: number, max: number): fc.Arbitrary<string> => fc.integer({ min, max }).chain(length =>
  fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map(c => String.fromCharCode(c)), minLength: length, maxLength: length }))
const coordinate = fc.oneof(fc.integer({ min: -5, max: 2 ** 31 + 5 }), fc.constantFrom(true, null, '0x10', '1e3', '7', ' 7', 1.5, 2 ** 53, '9223372036854775807', '9223372036854775808', -0))

t.test('poison that reaches the store: refused alone (400) exactly when PostgreSQL would refuse it, never a 5xx', async t => {
  const app = await startBareApp(t, { LOG_LEVEL: 'silent' })
  const stored = async (): Promise<number> => (await app.store.pool.query('select count(*)::int as n from inbox')).rows[0].n
  const pgTakes = async (json: string): Promise<boolean> => app.store.pool.query('select $1::jsonb', [json]).then(() => true, () => false)
  const native = { 'content-type': 'application/json', event_type: 'ApplicationAuthentication.create', 'x-rh-sources-org-id': '7654321' }
  const answers = new Map<string, number>()
  const count = (what: string, code: number): void => { answers.set(`${what} ${code}`, (answers.get(`${what} ${code}`) ?? 0) + 1) }
  let n = 0
  // Like a bridge: a push shed by load shedding (a busy CI machine) is sent again; it is not an answer about the input.
  let shed = 0
  async function push (headers: Record<string, string>, payload: string): Promise<LightMyRequestResponse> {
    return injectPastShedding(app, { method: 'POST', url: '/internal/v1/events', headers, payload }, () => { shed++ })
  }

  // Each poison push goes with a clean one in the same group commit: the clean one is always stored.
  await fc.assert(fc.asyncProperty(poisonBodies, async body => {
    const before = await stored()
    const [res, clean] = await Promise.all([
      push({ ...native, 'webhook-id': `poison-${n}` }, body),
      push({ ...native, 'webhook-id': `clean-${n++}` }, '{"application_id":1}')
    ])
    count('NUL/surrogate body', res.statusCode)
    if (clean.statusCode !== 202) return false
    if (await pgTakes(body)) return res.statusCode === 202 && (await stored()) === before + 2
    return res.statusCode === 400 && /contains a (NUL|lone)/.test(res.json().detail) && (await stored()) === before + 1
  }), { numRuns: 600 })

  await fc.assert(fc.asyncProperty(fc.integer({ min: 100_000, max: 1_400_000 }), fc.constantFrom('0', '[]', '{}', '"s"'), async (width, item) => {
    const body = `{"wide":[${Array(width).fill(item).join(',')}]}`
    if (body.length > 4 * 1024 * 1024) return true
    const res = await push({ ...native, 'webhook-id': `wide-${n++}` }, body)
    count('wide array', res.statusCode)
    return res.statusCode === 202
  }), { numRuns: 12 })

  await fc.assert(fc.asyncProperty(printable(1, 6000), fc.constantFrom('webhook-id', 'ce-id', 'ce-source', 'source', 'id'), async (id, where) => {
    const before = await stored()
    const structured = where === 'source' || where === 'id'
    const res = structured
      ? await push({ 'content-type': 'application/cloudevents+json' },
        JSON.stringify({ specversion: '1.0', type: 't', source: 's', id: `i-${n++}`, [where]: id, kafkaheadereventtype: 'Source.destroy', kafkaheaderxrhsourcesorgid: '7654321', data: { id: 7 } }))
      : where === 'webhook-id'
        ? await push({ ...native, 'webhook-id': id }, '{"application_id":1}')
        : await push({ 'ce-id': where === 'ce-id' ? id : `i-${n++}`, 'ce-source': where === 'ce-source' ? id : 's', 'ce-kafkaheadereventtype': 'Source.destroy', 'ce-kafkaheaderxrhsourcesorgid': '7654321' }, '{"id":7}')
    count(`long ${where}`, res.statusCode)
    if (id.length > 512) return res.statusCode === 400 && new RegExp(`${where} is longer than 512 bytes`).test(res.json().detail) && (await stored()) === before
    return [200, 202].includes(res.statusCode)
  }), { numRuns: 300 })

  await fc.assert(fc.asyncProperty(coordinate, coordinate, printable(1, 300), async (partition, offset, topic) => {
    const before = await stored()
    const payload = JSON.stringify({
      records: [{
        topic,
        partition,
        offset,
        value: { id: 7 },
        headers: [{ key: 'event_type', value: Buffer.from('Source.destroy').toString('base64') }, { key: 'x-rh-sources-org-id', value: Buffer.from('7654321').toString('base64') }]
      }]
    })
    const res = await push({ 'content-type': 'application/json' }, payload)
    count('record coordinates', res.statusCode)
    const valid = (v: unknown, max: bigint): boolean => (typeof v === 'number' && Number.isSafeInteger(v)) || (typeof v === 'string' && /^[0-9]{1,19}$/.test(v))
      ? BigInt(v as number | string) >= 0n && BigInt(v as number | string) <= max
      : false
    const ok = /^[A-Za-z0-9._-]{1,249}$/.test(topic) && valid(partition, 2n ** 31n - 1n) && valid(offset, 2n ** 63n - 1n)
    return ok ? [200, 202].includes(res.statusCode) : res.statusCode === 400 && (await stored()) === before
  }), { numRuns: 600 })

  t.comment(`poison answers: ${JSON.stringify(Object.fromEntries([...answers].sort()))}; pushes shed by load shedding and sent again: ${shed}`)
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'still up')
})
