import { createHash } from 'node:crypto'
import { decodeIdentity, isOrgId } from '../identity.js'
import type { IncomingEvent } from '../events/event.js'
import { queueKeyFor } from '../events/keys.js'
import { traceContextOf, type TraceContext } from '../tracing/context.js'

export type NormaliseResult =
  | { ok: true, events: IncomingEvent[] }
  | { ok: false, detail: string }

export interface PushRequest {
  headers: Record<string, string | string[] | undefined>
  body: Buffer
}

const CONTENT_HASH_TTL_MS = 60_000
const EVENT_TYPE = /^[A-Za-z0-9_.:-]{1,128}$/
export const MAX_BATCH = 1000

class Invalid extends Error {}

/** Kafka header names arrive mangled differently by each bridge; compare them on [a-z0-9] only. */
function canonical (name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]/g, '')
}

type KafkaHeaders = Map<string, string>

function one (value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

const MAX_DEPTH = 64

/** Deeper than any event sources-api emits; deeper input only serves to exhaust a stack somewhere. */
function tooDeep (value: unknown): boolean {
  let level: unknown[] = [value]
  for (let depth = 0; level.length > 0; depth++) {
    if (depth > MAX_DEPTH) return true
    const next: unknown[] = []
    for (const v of level) if (v !== null && typeof v === 'object') next.push(...Object.values(v))
    level = next
  }
  return false
}

function parseJson (text: string, what: string): unknown {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new Invalid(`${what} is not valid JSON: ${(err as Error).message.slice(0, 200)}`)
  }
  if (tooDeep(value)) throw new Invalid(`${what} is nested more than ${MAX_DEPTH} levels deep`)
  return value
}

function isObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

function toEvent (headers: KafkaHeaders, body: unknown, dedupe: { key: string, ttlMs: number | null, deliveryId: string | null }, where: string, trace: TraceContext | null = null): IncomingEvent {
  const eventType = headers.get('eventtype')
  if (eventType === undefined || eventType === '') throw new Invalid(`${where}has no event type (event_type header)`)
  if (!EVENT_TYPE.test(eventType)) throw new Invalid(`${where}has an invalid event type`)
  if (!isObject(body)) throw new Invalid(`${where}body must be a JSON object`)

  let orgId = headers.get('xrhsourcesorgid')
  let accountNumber = headers.get('xrhsourcesaccountnumber') ?? null
  if (orgId !== undefined && orgId !== '' && !isOrgId(orgId)) throw new Invalid(`${where}x-rh-sources-org-id is not a valid org id`)
  if (orgId === undefined || orgId === '' || accountNumber === null) {
    const identity = decodeIdentity(headers.get('xrhidentity'))
    if (identity.ok) {
      if (orgId === undefined || orgId === '') orgId = identity.orgId
      accountNumber = accountNumber ?? identity.accountNumber
    }
  }
  if (orgId === undefined || orgId === '') throw new Invalid(`${where}has no org id (x-rh-sources-org-id header or org_id in x-rh-identity)`)

  return {
    eventType,
    orgId,
    accountNumber: accountNumber === '' ? null : accountNumber,
    body,
    queueKey: queueKeyFor(eventType, body),
    dedupeKey: dedupe.key,
    dedupeTtlMs: dedupe.ttlMs,
    deliveryId: dedupe.deliveryId,
    // The format's own trace context first (CloudEvents' extension), else the Kafka record's header.
    trace: trace ?? traceContextOf(headers.get('traceparent'), headers.get('tracestate'))
  }
}

/** Identical re-emissions are byte for byte identical, so the raw bytes are what to compare. */
function contentHash (headers: KafkaHeaders, raw: Buffer): string {
  const hash = createHash('sha256')
  for (const name of ['eventtype', 'xrhsourcesorgid', 'xrhsourcesaccountnumber', 'xrhidentity']) {
    hash.update(`${name}=${headers.get(name) ?? ''}\n`)
  }
  hash.update(raw)
  return 'hash:' + hash.digest('base64url')
}

function sourcesNative (req: PushRequest, body: unknown): IncomingEvent {
  const headers: KafkaHeaders = new Map()
  for (const [name, value] of Object.entries(req.headers)) {
    const v = one(value)
    if (v !== undefined) headers.set(canonical(name), v)
  }
  const webhookId = one(req.headers['webhook-id'])
  const dedupe = webhookId
    ? { key: `webhook:${webhookId}`, ttlMs: null, deliveryId: webhookId }
    : { key: contentHash(headers, req.body), ttlMs: CONTENT_HASH_TTL_MS, deliveryId: null }
  return { ...toEvent(headers, body, dedupe, ''), format: 'sources-native' }
}

function cloudEventDedupe (source: unknown, id: unknown, where: string): { key: string, ttlMs: null, deliveryId: string } {
  if (typeof id !== 'string' || id === '' || typeof source !== 'string' || source === '') {
    throw new Invalid(`${where}CloudEvent needs non-empty id and source`)
  }
  return { key: `ce:${source}|${id}`, ttlMs: null, deliveryId: id }
}

function cloudEventBinary (req: PushRequest): IncomingEvent {
  const headers: KafkaHeaders = new Map()
  for (const [name, value] of Object.entries(req.headers)) {
    const v = one(value)
    if (v !== undefined && name.toLowerCase().startsWith('ce-kafkaheader')) headers.set(canonical(name.slice('ce-kafkaheader'.length)), v)
  }
  const body = parseJson(req.body.toString('utf8'), 'body')
  const trace = traceContextOf(one(req.headers['ce-traceparent']), one(req.headers['ce-tracestate']))
  return { ...toEvent(headers, body, cloudEventDedupe(one(req.headers['ce-source']), one(req.headers['ce-id']), ''), '', trace), format: 'cloudevents-binary' }
}

function cloudEventStructured (ce: unknown, where: string): IncomingEvent {
  if (!isObject(ce)) throw new Invalid(`${where}CloudEvent must be a JSON object`)
  const headers: KafkaHeaders = new Map()
  for (const [name, value] of Object.entries(ce)) {
    if (name.startsWith('kafkaheader') && typeof value === 'string') headers.set(canonical(name.slice('kafkaheader'.length)), value)
  }
  let data = ce.data
  if (data === undefined && typeof ce.data_base64 === 'string') {
    data = parseJson(Buffer.from(ce.data_base64, 'base64').toString('utf8'), `${where}data_base64`)
  } else if (typeof data === 'string') {
    data = parseJson(data, `${where}data`)
  }
  const trace = typeof ce.traceparent === 'string' ? traceContextOf(ce.traceparent, typeof ce.tracestate === 'string' ? ce.tracestate : undefined) : null
  return { ...toEvent(headers, data, cloudEventDedupe(ce.source, ce.id, where), where, trace), format: 'cloudevents-structured' }
}

function decodeBase64Text (value: unknown, what: string): string {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw new Invalid(`${what} is not base64`)
  return Buffer.from(value, 'base64').toString('utf8')
}

function record (r: unknown, where: string): IncomingEvent {
  if (!isObject(r)) throw new Invalid(`${where}must be an object`)
  const { topic, partition, offset } = r
  if (typeof topic !== 'string' || topic === '' || !Number.isInteger(Number(partition)) || !Number.isInteger(Number(offset)) ||
      partition === null || offset === null || partition === '' || offset === '') {
    throw new Invalid(`${where}needs topic, partition and offset`)
  }
  const headers: KafkaHeaders = new Map()
  if (r.headers !== undefined) {
    if (!Array.isArray(r.headers)) throw new Invalid(`${where}headers must be an array`)
    r.headers.forEach((h: unknown, i: number) => {
      if (!isObject(h) || typeof h.key !== 'string') throw new Invalid(`${where}headers[${i}] needs a key`)
      headers.set(canonical(h.key), decodeBase64Text(h.value, `${where}headers[${i}].value`))
    })
  }
  let value = r.value
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value)
    } catch {
      value = parseJson(decodeBase64Text(value, `${where}value`), `${where}value`)
    }
  }
  return { ...toEvent(headers, value, kafkaDelivery(topic, partition, offset), where), format: 'kafka-record' }
}

/** One Kafka record, however it reached us (pushed by a Strimzi bridge or consumed directly), is one delivery. */
function kafkaDelivery (topic: string, partition: unknown, offset: unknown): { key: string, ttlMs: null, deliveryId: string } {
  const id = `${topic}/${Number(partition)}/${Number(offset)}`
  return { key: `kafka:${id}`, ttlMs: null, deliveryId: id }
}

/** A record as a Kafka client (kafkajs) hands it over: raw value bytes, header values as bytes or text. */
export interface KafkaRecord {
  topic: string
  partition: number
  offset: string
  value: Buffer | null
  headers?: Record<string, Buffer | string | Array<Buffer | string> | undefined>
}

/**
 * A record consumed from the event topic directly (KAFKA_CONSUME): the same event, with the
 * same topic/partition/offset dedupe key, as when a Strimzi bridge pushes that record, so a
 * record read twice, or read by one path and pushed by the other, is stored once.
 */
export function normaliseKafkaRecord (r: KafkaRecord): { ok: true, event: IncomingEvent } | { ok: false, detail: string } {
  try {
    const headers: KafkaHeaders = new Map()
    for (const [name, value] of Object.entries(r.headers ?? {})) {
      // A repeated header: the last one wins, as in a pushed record batch.
      const v = Array.isArray(value) ? value.at(-1) : value
      if (v !== undefined) headers.set(canonical(name), typeof v === 'string' ? v : v.toString('utf8'))
    }
    if (r.value === null || r.value.length === 0) throw new Invalid('value is empty')
    const body = parseJson(r.value.toString('utf8'), 'value')
    return { ok: true, event: { ...toEvent(headers, body, kafkaDelivery(r.topic, r.partition, r.offset), ''), format: 'kafka-record' } }
  } catch (err) {
    if (err instanceof Invalid) return { ok: false, detail: err.message }
    throw err
  }
}

function batch (items: unknown, label: string, each: (item: unknown, where: string) => IncomingEvent): IncomingEvent[] {
  if (!Array.isArray(items) || items.length === 0) throw new Invalid(`${label} must be a non-empty array`)
  if (items.length > MAX_BATCH) throw new Invalid(`${label} has ${items.length} entries; at most ${MAX_BATCH} are accepted per request`)
  return items.map((item, i) => each(item, `${label}[${i}] `))
}

/** A request that carries one event: the request's own traceparent is the event's when the event names none. */
function withRequestTrace (req: PushRequest, event: IncomingEvent): IncomingEvent {
  event.trace ??= traceContextOf(one(req.headers.traceparent), one(req.headers.tracestate))
  return event
}

/**
 * Turns any of the four push formats into inbox events. A batch is all or
 * nothing: one invalid record rejects the request with its index named.
 */
export function normalisePush (req: PushRequest): NormaliseResult {
  const contentType = (one(req.headers['content-type']) ?? '').split(';')[0].trim().toLowerCase()
  try {
    if (contentType === 'application/cloudevents-batch+json') {
      return { ok: true, events: batch(parseJson(req.body.toString('utf8'), 'body'), 'batch', cloudEventStructured) }
    }
    if (contentType === 'application/cloudevents+json') {
      return { ok: true, events: [withRequestTrace(req, cloudEventStructured(parseJson(req.body.toString('utf8'), 'body'), ''))] }
    }
    if (req.headers['ce-id'] !== undefined || req.headers['ce-specversion'] !== undefined) {
      return { ok: true, events: [withRequestTrace(req, cloudEventBinary(req))] }
    }
    if (req.body.length === 0) throw new Invalid('body is empty')
    const body = parseJson(req.body.toString('utf8'), 'body')
    if (isObject(body) && req.headers.event_type === undefined && 'records' in body) {
      return { ok: true, events: batch(body.records, 'records', record) }
    }
    return { ok: true, events: [sourcesNative(req, body)] }
  } catch (err) {
    if (err instanceof Invalid) return { ok: false, detail: err.message }
    throw err
  }
}
