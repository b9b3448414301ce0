import { readFileSync, mkdtempSync, rmSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ready, startServer } from './helpers/process.js'
import { freePort } from './helpers/stack.js'

// The real server process with the image's heap limit, three ports, push authentication, and the
// bounds of every port short enough to watch: hostile uploads against the pod's 320 MiB.
const PUSH_TOKEN = 'push-token-stalled-0123456789abcdef'
const SECRET = 'whsec_' + Buffer.from('stalled-uploads-webhook-secret-32b').toString('base64')
const UPLOAD = 4 * 1024 * 1024
const UPLOADS = 30
const MAX_CONNECTIONS = 40

function rssBytes (pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024
}

interface Upload { socket: Socket, answer: string, closed: boolean, sent: boolean }

/** Sends the headers and all but the last byte of a 4 MB body, then stalls. */
function stalledUpload (port: number, headers: Record<string, string>): Upload {
  const upload: Upload = { socket: connect(port, '127.0.0.1'), answer: '', closed: false, sent: false }
  const { socket } = upload
  socket.on('data', d => { upload.answer += d.toString() })
  socket.on('error', () => {})
  socket.on('close', () => { upload.closed = true })
  const head = ['POST /internal/v1/events HTTP/1.1', 'Host: cloudoreg', 'Content-Type: application/json', `Content-Length: ${UPLOAD}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)].join('\r\n') + '\r\n\r\n'
  socket.write(head)
  const chunk = Buffer.alloc(64 * 1024, 0x20)
  let left = UPLOAD - 1
  const more = (): void => {
    while (left > 0 && !socket.destroyed) {
      const n = Math.min(left, chunk.length)
      left -= n
      if (!socket.write(chunk.subarray(0, n), () => { if (left === 0) upload.sent = true })) {
        socket.once('drain', more)
        return
      }
    }
  }
  more()
  return upload
}

/** Sends part of a request and nothing more; resolves when the server closes the connection. */
function stalledRequest (port: number, text: string): Promise<void> {
  const socket = connect(port, '127.0.0.1', () => socket.write(text))
  socket.on('error', () => {})
  return new Promise(resolve => socket.on('close', () => resolve()))
}

t.test('stalled uploads on every port', async t => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cloudoreg-stalled-'))
  const [port, pushPort, metricsPort, pgPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()])
  const server = startServer({
    NODE_OPTIONS: '--max-old-space-size=192',
    DATA_DIR: dataDir,
    HOST: '127.0.0.1',
    PORT: String(port),
    PUSH_PORT: String(pushPort),
    METRICS_PORT: String(metricsPort),
    EMBEDDED_PG_PORT: String(pgPort),
    PUSH_TOKEN,
    PUSH_WEBHOOK_SECRET: SECRET,
    HTTP_IDLE_TIMEOUT_MS: '2000',
    HTTP_MAX_CONNECTIONS: String(MAX_CONNECTIONS)
  })
  t.teardown(async () => {
    server.child.kill('SIGKILL')
    await server.exited
    rmSync(dataDir, { recursive: true, force: true })
  })
  await ready(`http://127.0.0.1:${port}`)
  const pid = server.child.pid!
  const mib = (n: number): string => (n / 2 ** 20).toFixed(1)
  const settled = async (uploads: Upload[], what: string): Promise<void> => {
    await new Promise(resolve => setTimeout(resolve, 500))
    await t.resolves(eventuallyTrue(() => uploads.every(u => u.closed || u.sent || u.answer !== ''), what))
    await new Promise(resolve => setTimeout(resolve, 1000))
  }

  // Without credentials: refused from the headers, before the body.
  const before = rssBytes(pid)
  const anonymous = Array.from({ length: UPLOADS }, () => stalledUpload(pushPort, {}))
  await settled(anonymous, 'the anonymous uploads to be answered or sent')
  const anonymousRss = rssBytes(pid)
  // The 401 itself may be lost to the reset that closing a connection with unread data causes.
  await t.resolves(eventuallyTrue(() => anonymous.every(u => u.closed || /^HTTP\/1\.1 401 /.test(u.answer)), 'their connections to be refused'),
    'each answered 401 and closed while its body was still coming')
  const read401 = anonymous.filter(u => /^HTTP\/1\.1 401 /.test(u.answer)).length
  t.comment(`${UPLOADS} stalled 4 MB uploads without credentials: RSS ${mib(before)} → ${mib(anonymousRss)} MiB (+${mib(anonymousRss - before)}); ` +
    `${read401} read their 401 before the connection closed`)
  t.ok(anonymousRss - before < 32 * 2 ** 20, 'no body of theirs held')

  // With signature headers (which need the body to be verified): the bodies in flight share one budget.
  const now = Math.floor(Date.now() / 1000)
  const signatureHeaders = (i: number): Record<string, string> =>
    ({ 'webhook-id': `msg_${i}`, 'webhook-timestamp': String(now), 'webhook-signature': 'v1,AAAA' })
  // First the same volume of bodies read whole and refused (a bad signature), twice: the heap's
  // young generation and the allocator grow to their working size here, not in the figure below
  // (on the compiled build they would add 20-30 MiB to it that no request holds).
  const warmBefore = rssBytes(pid)
  for (let round = 0; round < 2; round++) {
    const codes = await Promise.all(Array.from({ length: 8 }, async (_, i) => (await fetch(`http://127.0.0.1:${pushPort}/internal/v1/events`, {
      method: 'POST', headers: { 'content-type': 'application/json', ...signatureHeaders(i) }, body: Buffer.alloc(UPLOAD, 0x20)
    })).status))
    t.same(new Set(codes), new Set([401]), 'whole bodies with a bad signature are refused')
  }
  const warmed = rssBytes(pid)
  t.comment(`warm-up, 16 whole 4 MB bodies refused: RSS ${mib(warmBefore)} → ${mib(warmed)} MiB`)
  const signed = Array.from({ length: UPLOADS }, (_, i) => stalledUpload(pushPort, signatureHeaders(i)))
  await settled(signed, 'the signed uploads to be answered or sent')
  const signedRss = rssBytes(pid)
  const held = signed.filter(u => !u.closed && u.answer === '').length
  const read503 = signed.filter(u => /^HTTP\/1\.1 503 /.test(u.answer)).length
  t.comment(`${UPLOADS} stalled 4 MB uploads with signature headers: RSS ${mib(warmed)} → ${mib(signedRss)} MiB (+${mib(signedRss - warmed)}); ` +
    `${held} held, ${UPLOADS - held} refused over the 32 MiB budget, ${read503} of them read their 503 before the connection closed`)
  t.ok(held <= 8, 'at most 32 MiB of bodies held (8 of 4 MB)')
  // As with the 401s, a 503 may be lost to the reset of a connection closed with unread data.
  t.ok(signed.every(u => u.closed || u.answer === '' || /^HTTP\/1\.1 503 /.test(u.answer)), 'the others answered 503 or closed')
  t.ok(read503 > 0, 'past 32 MiB of bodies in flight, uploads are answered 503')
  // Holding all 30 would put 120 MiB of bodies on top of the first figure. What is there instead is
  // the warm-up's own peak (8 whole bodies and their concatenation, about 64 MiB) and the 32 MiB held.
  t.ok(signedRss - before < 0.8 * UPLOADS * UPLOAD, `bodies held: about the budget, not 30 × 4 MB (RSS +${mib(signedRss - before)} MiB in all)`)
  await eventuallyTrue(() => signed.every(u => u.closed), 'the stalled bodies to be dropped after HTTP_IDLE_TIMEOUT_MS')
  t.pass('every stalled body was dropped by the idle timeout')

  // A request that stops half-way is dropped on every port.
  await stalledRequest(port, 'POST /internal/api/cloudoreg/v1/availability_status HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"so')
  t.pass('main port: a stalled body is dropped')
  await stalledRequest(metricsPort, 'GET /metrics HTTP/1.1\r\nHost: x\r\n')
  t.pass('metrics port: stalled headers are dropped')
  await stalledRequest(pushPort, `POST /internal/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${PUSH_TOKEN}\r\nContent-Length: 100\r\n\r\n{`)
  t.pass('push port: a stalled body with the token is dropped')

  // At most HTTP_MAX_CONNECTIONS connections per port.
  const sockets = await Promise.all(Array.from({ length: MAX_CONNECTIONS + 20 }, () => new Promise<Socket>(resolve => {
    const s = connect(metricsPort, '127.0.0.1', () => resolve(s))
    s.on('error', () => {})
  })))
  const answered = await Promise.all(sockets.map(s => new Promise<boolean>(resolve => {
    s.once('data', () => resolve(true))
    s.once('close', () => resolve(false))
    s.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n')
  })))
  for (const s of sockets) s.destroy()
  const served = answered.filter(Boolean).length
  t.comment(`${sockets.length} connections to the metrics port: ${served} served`)
  t.ok(served <= MAX_CONNECTIONS && served > 0, `at most ${MAX_CONNECTIONS} connections served at once`)
})

async function eventuallyTrue (check: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}
