import http from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export type FaultKind = 503 | 'reset' | 'hang' | 401

export interface RecordedRequest {
  method: string;
  path: string;
  /** raw query string, without the leading '?' */
  query: string;
  headers: Record<string, string>;
  body: unknown;
  rawBody: string;
  /** When it arrived (it started before). */
  at: number;
  /** When and how it was answered (unset while unanswered, or if the caller went away). */
  answeredAt?: number;
  status?: number;
}

export interface FakeReply {
  status: number;
  /** objects are sent as JSON; strings as-is with `contentType` */
  body?: unknown;
  contentType?: string;
  headers?: Record<string, string>;
}

export interface FakeHttpOptions {
  seed?: number;
  delayMs?: number;
  failureRate?: number;
  hangMs?: number;
}

function mulberry32 (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const RANDOM_FAULTS: readonly FaultKind[] = [503, 'reset', 'hang']

export abstract class FakeHttpServer {
  url = ''
  readonly requests: RecordedRequest[] = []
  delayMs: number
  /** Up to this much more delay, drawn per request, so that concurrent requests overtake each other. */
  jitterMs = 0
  failureRate: number
  hangMs: number
  faultsInjected = 0
  /** While set, every request fails this way (an outage), until set back to null. */
  outage: FaultKind | null = null

  /** Requests whose answers wait while `pause()`d, oldest first. */
  private readonly held: Array<{ rec: RecordedRequest, answer: (reply?: FakeReply) => void }> = []
  private paused = false
  private readonly forced: FaultKind[] = []
  private readonly replies: FakeReply[] = []
  private readonly random: () => number
  private readonly basePath: string
  private readonly server: http.Server

  protected constructor (opts: FakeHttpOptions = {}, basePath = '') {
    this.delayMs = opts.delayMs ?? 0
    this.failureRate = opts.failureRate ?? 0
    this.hangMs = opts.hangMs ?? 30_000
    // A fixed default seed keeps a failing run reproducible.
    this.random = mulberry32(opts.seed ?? 0x5eed)
    this.basePath = basePath
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch(() => res.destroy())
    })
  }

  failNext (n: number, kind: FaultKind): void {
    for (let i = 0; i < n; i++) this.forced.push(kind)
  }

  /** Answers the next request with this reply (say a 429 with Retry-After), whatever it asked. */
  replyNext (reply: FakeReply): void {
    this.replies.push(reply)
  }

  /** From now on, answers wait (requests are still recorded on arrival) until `resume()` or `answerHeld`. */
  pause (): void {
    this.paused = true
  }

  /** Requests whose answers are waiting. */
  heldRequests (): RecordedRequest[] {
    return this.held.map(h => h.rec)
  }

  /** Answers the oldest waiting request with `reply` at once; the others keep waiting. */
  answerHeld (reply: FakeReply): RecordedRequest | undefined {
    const h = this.held.shift()
    h?.answer(reply)
    return h?.rec
  }

  /** Answers every waiting request as usual, and stops waiting. */
  resume (): void {
    this.paused = false
    for (const h of this.held.splice(0)) h.answer()
  }

  async listen (): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(0, '127.0.0.1', () => resolve())
    })
    // A test that failed before it could close its fakes must still end, not wait for tap's timeout.
    this.server.unref()
    const { port } = this.server.address() as AddressInfo
    this.url = `http://127.0.0.1:${port}${this.basePath}`
    return this
  }

  async close (): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    this.server.closeAllConnections()
    await closed
  }

  protected abstract route (req: RecordedRequest): FakeReply | Promise<FakeReply>

  /** Sees every request on arrival, including the ones that will be failed. */
  protected observe (_req: RecordedRequest): void {}

  protected faultReply (status: 503 | 401): FakeReply {
    return { status, body: { errors: [{ status: String(status), detail: http.STATUS_CODES[status] }] } }
  }

  private pickFault (): FaultKind | undefined {
    if (this.outage !== null) return this.outage
    const forced = this.forced.shift()
    if (forced !== undefined) return forced
    if (this.failureRate > 0 && this.random() < this.failureRate) {
      return RANDOM_FAULTS[Math.floor(this.random() * RANDOM_FAULTS.length)]
    }
    return undefined
  }

  private async handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const at = Date.now()
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const rawBody = Buffer.concat(chunks).toString('utf8')
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const rec: RecordedRequest = {
      method: req.method ?? 'GET',
      path: q < 0 ? url : url.slice(0, q),
      query: q < 0 ? '' : url.slice(q + 1),
      headers: flattenHeaders(req.headers),
      body: parseJson(rawBody),
      rawBody,
      at,
    }
    this.requests.push(rec)
    this.observe(rec)

    const canned = this.replies.shift()
    const fault = canned === undefined ? this.pickFault() : undefined
    if (fault !== undefined) this.faultsInjected++
    if (!(await waitUnlessGone(this.delayMs + Math.floor(Math.random() * this.jitterMs), res))) return
    if (fault === 'reset') {
      req.socket.destroy()
      return
    }
    // A hang answers normally afterwards, like a slow upstream that still applies the change.
    if (fault === 'hang' && !(await waitUnlessGone(this.hangMs, res))) return
    const instead = this.paused ? await new Promise<FakeReply | undefined>(resolve => this.held.push({ rec, answer: resolve })) : undefined
    const reply = instead ?? canned ?? (fault === 503 || fault === 401 ? this.faultReply(fault) : await this.route(rec))
    if (res.destroyed) return
    rec.answeredAt = Date.now()
    rec.status = reply.status
    send(res, reply)
  }
}

function flattenHeaders (headers: http.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(headers)) {
    if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v
  }
  return out
}

function parseJson (text: string): unknown {
  if (text === '') return undefined
  try {
    return JSON.parse(text) as unknown
  } catch {
    return undefined
  }
}

/** Resolves false as soon as the client (or close()) drops the connection. */
function waitUnlessGone (ms: number, res: ServerResponse): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false)
  if (ms <= 0) return Promise.resolve(true)
  return new Promise((resolve) => {
    const done = (ok: boolean): void => {
      clearTimeout(timer)
      res.off('close', onClose)
      resolve(ok)
    }
    const onClose = (): void => done(false)
    const timer = setTimeout(() => done(true), ms)
    res.on('close', onClose)
  })
}

function send (res: ServerResponse, reply: FakeReply): void {
  if (res.destroyed) return
  if (reply.body === undefined || reply.status === 204) {
    res.writeHead(reply.status, reply.headers).end()
    return
  }
  const isText = typeof reply.body === 'string'
  const payload = isText ? (reply.body as string) : JSON.stringify(reply.body)
  res
    .writeHead(reply.status, {
      ...reply.headers,
      'content-type': reply.contentType ?? (isText ? 'text/plain' : 'application/json'),
      'content-length': Buffer.byteLength(payload),
    })
    .end(payload)
}
