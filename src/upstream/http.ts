import { setTimeout as sleep } from 'node:timers/promises'
import { request, type Dispatcher } from 'undici'
import { backoffDelay, type Backoff } from '../backoff.js'
import type { Gate } from './breaker.js'
import { UpstreamError, type UpstreamTarget } from './errors.js'

export interface CallOptions {
  target: UpstreamTarget
  dispatcher: Dispatcher
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE'
  url: string
  headers: Record<string, string>
  body?: unknown
  timeoutMs: number
  attempts: number
  observe?: (target: UpstreamTarget, outcome: string, seconds: number) => void
  /** The upstream's breaker and hold: every request goes through it. */
  gate?: Gate
}

export interface CallResult {
  status: number
  body: unknown
}

function classify (target: UpstreamTarget, status: number, body: unknown, headers: Dispatcher.ResponseData['headers']): UpstreamError | null {
  if (status < 400) return null
  const reason = reasonOf(body)
  if (status === 404) return new UpstreamError(target, 'not_found', 'not found', status, reason)
  if (status === 401 || status === 403) return new UpstreamError(target, 'misconfigured', `our credentials were refused (${status})`, status, reason)
  if (status === 408 || status === 429 || status >= 500) {
    const err = new UpstreamError(target, 'transient', `answered ${status}`, status, reason)
    if (status === 429 || status === 503) {
      err.retryAfterMs = waitAsked(headers)
      // A 429 without a wait still says we call too fast: a short pause for everyone.
      if (status === 429) err.retryAfterMs ??= BARE_429_WAIT_MS
      err.throttled = err.retryAfterMs !== undefined
    }
    return err
  }
  return new UpstreamError(target, 'rejected', `answered ${status}`, status, reason)
}

const BARE_429_WAIT_MS = 1000

function header (headers: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const value = headers[name]
  return Array.isArray(value) ? value[0] : value
}

/**
 * The wait a 429 or 503 asks for, in ms: `Retry-After` (delta-seconds or an HTTP date) or
 * `X-RateLimit-Delay` (seconds, fractions allowed); the longer if both. Anything else is ignored;
 * the gate bounds it (RETRY_AFTER_MAX_SECONDS).
 */
export function waitAsked (headers: Dispatcher.ResponseData['headers'], now = Date.now()): number | undefined {
  const waits: number[] = []
  const retryAfter = header(headers, 'retry-after')?.trim()
  if (retryAfter !== undefined && retryAfter !== '') {
    if (/^\d{1,9}$/.test(retryAfter)) waits.push(Number(retryAfter) * 1000)
    else {
      const at = Date.parse(retryAfter)
      if (!Number.isNaN(at) && /[a-z]/i.test(retryAfter)) waits.push(Math.max(0, at - now))
    }
  }
  const delay = header(headers, 'x-ratelimit-delay')?.trim()
  if (delay !== undefined && /^\d{1,9}(\.\d{1,3})?$/.test(delay)) waits.push(Math.round(Number(delay) * 1000))
  return waits.length === 0 ? undefined : Math.max(...waits)
}

/** The human-readable part of the JSON:API-style error bodies sources-api and RHSM send. */
function reasonOf (body: unknown): string | undefined {
  const errors = (body as { errors?: unknown } | null)?.errors
  if (Array.isArray(errors) && errors.length > 0) {
    const first = errors[0] as Record<string, unknown>
    const text = first.detail ?? first.title
    if (typeof text === 'string') return text.slice(0, 500)
  }
  if (typeof body === 'string' && body !== '') return body.slice(0, 500)
  return undefined
}

/**
 * A failed request's name for the record: a system or undici error's code (ECONNRESET,
 * UND_ERR_HEADERS_TIMEOUT), else its name. An AbortSignal timeout's DOMException has a numeric code
 * (23): its name, TimeoutError, is the one to keep.
 */
function nameOf (e: Error & { code?: unknown }): string {
  return typeof e.code === 'string' ? e.code : e.name
}

async function once (o: CallOptions): Promise<CallResult> {
  const headers: Record<string, string> = { accept: 'application/json', ...o.headers }
  let payload: string | undefined
  if (o.body !== undefined) {
    payload = JSON.stringify(o.body)
    headers['content-type'] = 'application/json'
  }
  let res: Dispatcher.ResponseData
  try {
    res = await request(o.url, {
      dispatcher: o.dispatcher,
      method: o.method,
      headers,
      body: payload,
      headersTimeout: o.timeoutMs,
      bodyTimeout: o.timeoutMs,
      signal: AbortSignal.timeout(o.timeoutMs)
    })
  } catch (err) {
    const e = err as Error & { code?: unknown }
    // A request undici refuses to build (say a header value with a line break) fails the same way every time.
    if (e.code === 'UND_ERR_INVALID_ARG') throw new UpstreamError(o.target, 'rejected', `${o.method} not sent: ${e.message.slice(0, 200)}`)
    const errorName = nameOf(e)
    throw Object.assign(new UpstreamError(o.target, 'transient', `${o.method} failed: ${errorName}`), { errorName })
  }
  let text: string
  try {
    text = await res.body.text()
  } catch (err) {
    const errorName = nameOf(err as Error)
    throw Object.assign(new UpstreamError(o.target, 'transient', `${o.method} body failed: ${errorName}`), { errorName })
  }
  let body: unknown = text
  if (text !== '' && (res.headers['content-type'] ?? '').includes('json')) {
    try { body = JSON.parse(text) } catch { body = text }
  }
  const error = classify(o.target, res.statusCode, body, res.headers)
  if (error) throw error
  return { status: res.statusCode, body }
}

/** Quick: 100 to 150 ms, then 200 to 300 ms; longer waits are the event retry's, which frees the slot. */
const CALL_BACKOFF: Backoff = { firstMs: 150, maxMs: 1000, jitter: 1 / 3 }

/**
 * One upstream call with a few quick attempts for transient failures; the
 * event-level retry with backoff takes over when these run out.
 */
export async function call (o: CallOptions): Promise<CallResult> {
  for (let attempt = 1; ; attempt++) {
    const started = process.hrtime.bigint()
    try {
      const result = await (o.gate === undefined ? once(o) : o.gate.run(() => once(o)))
      o.observe?.(o.target, 'ok', Number(process.hrtime.bigint() - started) / 1e9)
      return result
    } catch (err) {
      const e = err as UpstreamError
      if (!e.refused) o.observe?.(o.target, e.throttled ? 'throttled' : e.kind, Number(process.hrtime.bigint() - started) / 1e9)
      // An upstream that is down or asked us to wait is the event's to wait for (the runner parks it), not this loop's.
      if (e.kind !== 'transient' || attempt >= o.attempts || e.throttled || o.gate?.blocked() === true) throw err
      await sleep(backoffDelay(CALL_BACKOFF, attempt))
    }
  }
}
