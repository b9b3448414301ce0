import { createHash } from 'node:crypto'
import type { IncomingEvent, PushChannel } from '../events/event.js'
import { queueKeyFor } from '../events/keys.js'
import { decodeIdentity, isOrgId, optionalAccountNumber } from '../identity.js'
import { deliveryIdProblem, jsonProblem } from './storable.js'
import { traceContextOf, type TraceContext } from '../tracing/context.js'

export type NormaliseResult =
  | { ok: true, events: IncomingEvent[], notes: string[] }
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

/** Parsed, and checked for what the store would refuse (NUL, lone surrogates, depth), naming the place. */
function parseJson (text: string, what: string): unknown {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new Invalid(`${what} is not valid JSON: ${(err as Error).message.slice(0, 200)}`)
  }
  return storable(value, what)
}

function storable (value: unknown, what: string): unknown {
  const problem = jsonProblem(value, what)
  if (problem !== null) throw new Invalid(problem)
  return value
}

/** A delivery id becomes a dedupe key: bounded, and text the store takes. */
function deliveryId (value: string, what: string): string {
  const problem = deliveryIdProblem(value)
  if (problem !== null) throw new Invalid(`${what} ${problem}`)
  return value
}

/** The body fields sources-api fills with its int64 ids, in the events cloudoreg acts on. */
const ID_FIELDS = ['id', 'source_id', 'application_id', 'authentication_id', 'resource_id', 'application_type_id']
const ID_RESOURCES = new Set(['ApplicationAuthentication', 'Application', 'Authentication', 'Source'])
const DECIMAL_ID = /^[0-9]{1,20}$/

/**
 * An id must name one resource: a decimal string, or a number JSON holds exactly. 1e21 would be
 * read as "1e+21", and 2^53+1 as 2^53, another resource's id.
 */
function checkIds (eventType: string, body: Record<string, unknown>, where: string): void {
  if (!ID_RESOURCES.has(eventType.split('.')[0])) return
  for (const field of ID_FIELDS) {
    const v = body[field]
    if (v === undefined || v === null) continue
    if (typeof v === 'string' ? DECIMAL_ID.test(v) : Number.isSafeInteger(v) && (v as number) >= 0) continue
    throw new Invalid(`${where}body.${field} is not an id (a string of up to 20 digits, or a non-negative integer below 2^53)`)
  }
}

function isObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

interface Dedupe { key: string, ttlMs: number | null, deliveryId: string | null }

function toEvent (headers: KafkaHeaders, body: unknown, dedupe: Dedupe, where: string, notes: string[], trace: TraceContext | null = null): IncomingEvent {
  const eventType = headers.get('eventtype')
  if (eventType === undefined || eventType === '') throw new Invalid(`${where}has no event type (event_type header)`)
  if (!EVENT_TYPE.test(eventType)) throw new Invalid(`${where}has an invalid event type`)
  if (!isObject(body)) throw new Invalid(`${where}body must be a JSON object`)
  checkIds(eventType, body, where)

  let orgId = headers.get('xrhsourcesorgid')
  if (orgId === '') orgId = undefined
  if (orgId !== undefined && !isOrgId(orgId)) throw new Invalid(`${where}x-rh-sources-org-id is not a valid org id (digits)`)
  let account = optionalAccountNumber(headers.get('xrhsourcesaccountnumber'))
  if (account.refused) notes.push(`${where}x-rh-sources-account-number is not an account number (digits); ignored`)
  if (orgId === undefined || account.accountNumber === null) {
    const identity = decodeIdentity(headers.get('xrhidentity'))
    if (identity.ok) {
      orgId ??= identity.orgId
      if (account.accountNumber === null) {
        account = { accountNumber: identity.accountNumber, refused: identity.accountNumberRefused }
        if (account.refused) notes.push(`${where}account_number in x-rh-identity is not an account number (digits); ignored`)
      }
    } else if (orgId === undefined && headers.has('xrhidentity')) {
      throw new Invalid(`${where}has no org id: no x-rh-sources-org-id header, and ${identity.reason}`)
    }
  }
  if (orgId === undefined) throw new Invalid(`${where}has no org id (x-rh-sources-org-id header or org_id in x-rh-identity)`)

  return {
    eventType,
    orgId,
    accountNumber: account.accountNumber,
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

function sourcesNative (req: PushRequest, body: unknown, notes: string[]): IncomingEvent {
  const headers: KafkaHeaders = new Map()
  for (const [name, value] of Object.entries(req.headers)) {
    const v = one(value)
    if (v !== undefined) headers.set(canonical(name), v)
  }
  const webhookId = one(req.headers['webhook-id'])
  const dedupe = webhookId
    ? { key: `webhook:${deliveryId(webhookId, 'webhook-id')}`, ttlMs: null, deliveryId: webhookId }
    : { key: contentHash(headers, req.body), ttlMs: CONTENT_HASH_TTL_MS, deliveryId: null }
  return { ...toEvent(headers, body, dedupe, '', notes), format: 'sources-native' }
}

function cloudEventDedupe (source: unknown, id: unknown, where: string, names: [string, string]): Dedupe {
  if (typeof id !== 'string' || id === '' || typeof source !== 'string' || source === '') {
    throw new Invalid(`${where}CloudEvent needs non-empty id and source`)
  }
  return { key: `ce:${deliveryId(source, where + names[0])}|${deliveryId(id, where + names[1])}`, ttlMs: null, deliveryId: id }
}

function cloudEventBinary (req: PushRequest, notes: string[]): IncomingEvent {
  const headers: KafkaHeaders = new Map()
  for (const [name, value] of Object.entries(req.headers)) {
    const v = one(value)
    if (v !== undefined && name.toLowerCase().startsWith('ce-kafkaheader')) headers.set(canonical(name.slice('ce-kafkaheader'.length)), v)
  }
  const body = parseJson(req.body.toString('utf8'), 'body')
  const dedupe = cloudEventDedupe(one(req.headers['ce-source']), one(req.headers['ce-id']), '', ['ce-source', 'ce-id'])
  const trace = traceContextOf(one(req.headers['ce-traceparent']), one(req.headers['ce-tracestate']))
  return { ...toEvent(headers, body, dedupe, '', notes, trace), format: 'cloudevents-binary' }
}

function cloudEventStructured (ce: unknown, where: string, notes: string[]): IncomingEvent {
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
  return { ...toEvent(headers, data, cloudEventDedupe(ce.source, ce.id, where, ['source', 'id']), where, notes, trace), format: 'cloudevents-structured' }
}

function decodeBase64Text (value: unknown, what: string): string {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw new Invalid(`${what} is not base64`)
  return Buffer.from(value, 'base64').toString('utf8')
}

/** Kafka's legal topic names. */
const TOPIC = /^[A-Za-z0-9._-]{1,249}$/
const MAX_PARTITION = 2n ** 31n - 1n
const MAX_OFFSET = 2n ** 63n - 1n

/**
 * A partition or offset as Kafka has them (int32, int64; never negative): a JSON integer held
 * exactly, or a string of digits. Canonical, so that one record always has one dedupe key; never
 * Number()'s reading (true → 1, "0x10" → 16, "1e3" → 1000).
 */
function kafkaInteger (value: unknown, max: bigint): string | null {
  let n: bigint
  if (typeof value === 'number' && Number.isSafeInteger(value)) n = BigInt(value)
  else if (typeof value === 'string' && /^[0-9]{1,19}$/.test(value)) n = BigInt(value)
  else return null
  return n >= 0n && n <= max ? n.toString() : null
}

function record (r: unknown, where: string, notes: string[]): IncomingEvent {
  if (!isObject(r)) throw new Invalid(`${where}must be an object`)
  if (typeof r.topic !== 'string' || !TOPIC.test(r.topic)) throw new Invalid(`${where}topic must be a Kafka topic name`)
  const partition = kafkaInteger(r.partition, MAX_PARTITION)
  if (partition === null) throw new Invalid(`${where}partition must be an integer from 0 to 2^31-1`)
  const offset = kafkaInteger(r.offset, MAX_OFFSET)
  if (offset === null) throw new Invalid(`${where}offset must be an integer from 0 to 2^63-1`)
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
    let text: string | undefined = value
    try {
      value = JSON.parse(text)
    } catch {
      text = undefined
    }
    value = text === undefined ? parseJson(decodeBase64Text(r.value, `${where}value`), `${where}value`) : storable(value, `${where}value`)
  }
  return { ...toEvent(headers, value, kafkaDelivery(r.topic, partition, offset), where, notes), format: 'kafka-record' }
}

/** One Kafka record, however it reached us (pushed by a Strimzi bridge or consumed directly), is one delivery. */
function kafkaDelivery (topic: string, partition: number | string, offset: string): Dedupe {
  const id = `${topic}/${partition}/${offset}`
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
 * A record consumed from the event topic directly (KAFKA_CONSUME): the same event as when a
 * Strimzi bridge pushes that record; its dedupe key (topic/partition/offset) is the consumer's own,
 * so a record read twice is stored once, and no push can claim it first.
 */
export function normaliseKafkaRecord (r: KafkaRecord): { ok: true, event: IncomingEvent, notes: string[] } | { ok: false, detail: string } {
  const notes: string[] = []
  try {
    const headers: KafkaHeaders = new Map()
    for (const [name, value] of Object.entries(r.headers ?? {})) {
      // A repeated header: the last one wins, as in a pushed record batch.
      const v = Array.isArray(value) ? value.at(-1) : value
      if (v !== undefined) headers.set(canonical(name), typeof v === 'string' ? v : v.toString('utf8'))
    }
    if (r.value === null || r.value.length === 0) throw new Invalid('value is empty')
    const body = parseJson(r.value.toString('utf8'), 'value')
    const event: IncomingEvent = { ...toEvent(headers, body, kafkaDelivery(r.topic, r.partition, r.offset), '', notes), format: 'kafka-record' }
    return { ok: true, event: inChannel('consumer', [event]).events[0], notes }
  } catch (err) {
    if (err instanceof Invalid) return { ok: false, detail: err.message }
    throw err
  }
}

type Reader = (item: unknown, where: string, notes: string[]) => IncomingEvent

function batch (items: unknown, label: string, each: Reader, notes: string[]): IncomingEvent[] {
  if (!Array.isArray(items) || items.length === 0) throw new Invalid(`${label} must be a non-empty array`)
  if (items.length > MAX_BATCH) throw new Invalid(`${label} has ${items.length} entries; at most ${MAX_BATCH} are accepted per request`)
  return items.map((item, i) => each(item, `${label}[${i}] `, notes))
}

/** A request that carries one event: the request's own traceparent is the event's when the event names none. */
function withRequestTrace (req: PushRequest, event: IncomingEvent): IncomingEvent {
  event.trace ??= traceContextOf(one(req.headers.traceparent), one(req.headers.tracestate))
  return event
}

/**
 * Turns any of the four push formats into inbox events. A batch is all or
 * nothing: one invalid record rejects the request with its index named.
 * A signed push is taken only in the formats whose meaning (event type, tenant,
 * delivery id) is in the body, which is all a Standard Webhooks signature covers.
 * `notes` says what was dropped on the way (an invalid optional account number), for the log.
 */
export function normalisePush (req: PushRequest, channel: PushChannel): NormaliseResult {
  const contentType = (one(req.headers['content-type']) ?? '').split(';')[0].trim().toLowerCase()
  const notes: string[] = []
  const ok = (events: IncomingEvent[]): NormaliseResult => ({ ok: true, events: inChannel(`push-${channel}`, events).events, notes })
  try {
    if (contentType === 'application/cloudevents-batch+json') {
      return ok(batch(parseJson(req.body.toString('utf8'), 'body'), 'batch', cloudEventStructured, notes))
    }
    if (contentType === 'application/cloudevents+json') {
      return ok([withRequestTrace(req, cloudEventStructured(parseJson(req.body.toString('utf8'), 'body'), '', notes))])
    }
    if (channel !== 'signed' && (req.headers['ce-id'] !== undefined || req.headers['ce-specversion'] !== undefined)) {
      return ok([withRequestTrace(req, cloudEventBinary(req, notes))])
    }
    if (req.body.length === 0) throw new Invalid('body is empty')
    const body = parseJson(req.body.toString('utf8'), 'body')
    if (isObject(body) && (channel === 'signed' || req.headers.event_type === undefined) && 'records' in body) {
      return ok(batch(body.records, 'records', record, notes))
    }
    if (channel === 'signed') throw new Invalid(UNSIGNED_MEANING)
    return ok([sourcesNative(req, body, notes)])
  } catch (err) {
    if (err instanceof Invalid) return { ok: false, detail: err.message }
    throw err
  }
}

const UNSIGNED_MEANING = 'a signed push must carry its event type, tenant and delivery id in the signed body: ' +
  'send CloudEvents structured or batch (application/cloudevents+json, application/cloudevents-batch+json) or a record batch; ' +
  'headers are not covered by a Standard Webhooks signature'

/** What decides that two events are the same delivery: a redelivery repeats all of it. */
function fingerprint (e: IncomingEvent): string {
  return createHash('sha256').update(JSON.stringify([e.eventType, e.orgId, e.accountNumber, e.body])).digest('base64url').slice(0, 22)
}

/**
 * Dedupe keys belong to the channel that produced them (the direct consumer, or pushes by how they
 * authenticated), so that one channel cannot occupy another's keys; and a delivery id counts only
 * with the content it was first seen with, so that a push naming a future delivery's id cannot make
 * that delivery a "duplicate" that is never stored. Content-hash keys are content already.
 */
function inChannel (channel: string, events: IncomingEvent[]): { ok: true, events: IncomingEvent[] } {
  for (const e of events) e.dedupeKey = `${channel}:${e.dedupeKey}${e.dedupeTtlMs === null ? `#${fingerprint(e)}` : ''}`
  return { ok: true, events }
}
