import { Type } from '@sinclair/typebox'
import type { FastifyInstance } from 'fastify'
import { pushRouteServed } from '../src/config.js'
import type { PushChannel } from '../src/events/event.js'
import { normalisePush } from '../src/ingress/normalise.js'
import { loggedId } from '../src/log.js'
import { sendProblem } from '../src/plugins/infrastructure/problem.js'
import { ProblemRef } from '../src/schemas.js'
import { InboxBusy, UnstorableError } from '../src/store/inbox.js'
import { EVENT_ID_HEADER } from '../src/http/headers.js'
import { PushBodies, PushHeaders } from './push-docs.js'

const BODY_LIMIT = 4 * 1024 * 1024
const EventIdHeader = Type.String({
  description: 'The stored event ids, comma-separated in the order of the pushed events (a batch names each); ' +
    'look one up at GET /internal/v1/events/{id}',
  examples: ['1', '17,18,19']
})

export default async function events (app: FastifyInstance): Promise<void> {
  if (!pushRouteServed(app.config)) {
    app.log.info('the push route is off: KAFKA_CONSUME reads the event topic and no push credential is configured')
    return
  }
  // Bridges send JSON, CloudEvents types, or (Knative) no Content-Type at all; a 415 would drop
  // the event for good, so every body is taken raw and the push format decides how to read it.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: BODY_LIMIT }, (_request, body, done) => { done(null, body) })

  /** Each event's id, a redelivery's being that of the event it repeats (unknown once pruned: left out). */
  async function withOriginals (keys: string[], ids: Array<number | null>): Promise<number[]> {
    const repeated = keys.filter((_, i) => ids[i] === null)
    if (repeated.length === 0) return ids as number[]
    try {
      const originals = await app.store.inbox.idsOfDeliveries(repeated)
      return ids.map((id, i) => id ?? originals.get(keys[i])).filter((id): id is number => id !== undefined)
    } catch (err) {
      // The events are stored; only the header is lost.
      app.log.warn({ err }, 'looking up the originals of redelivered events failed')
      return ids.filter((id): id is number => id !== null)
    }
  }

  app.post('/internal/v1/events', {
    bodyLimit: BODY_LIMIT,
    config: {
      isPush: true,
      // The OpenAPI document only: the route itself takes every body raw and reads the format from it.
      swaggerTransform: ({ schema, url }: { schema: object, url: string }) => ({ schema: { ...schema, headers: PushHeaders, body: PushBodies }, url })
    },
    schema: {
      tags: ['ingress'],
      summary: 'Push sources-api events',
      description: 'Accepts sources-native pushes (event in the body, Kafka headers as HTTP headers), CloudEvents binary ' +
        '(Knative KafkaSource, no Content-Type needed), CloudEvents structured and batch, and Strimzi-style record batches. ' +
        'Replies 202 once every new event is durably stored, 200 when all were already stored (a redelivery). ' +
        'When PUSH_TOKEN or PUSH_WEBHOOK_SECRET is set, a push must carry the token (bearer or dapr-api-token), checked before ' +
        'the body is read, or a valid Standard Webhooks signature (webhook-id, webhook-timestamp within 5 minutes, webhook-signature v1) ' +
        'over a body that carries the whole event: CloudEvents structured or batch, or a record batch.',
      security: [{ bearer: [] }, { dapr: [] }, {}],
      response: {
        200: {
          description: 'All events were already stored (redelivery); cloudoreg-event-id names the stored originals',
          type: 'null',
          headers: { [EVENT_ID_HEADER]: EventIdHeader }
        },
        202: {
          description: 'Stored; will be processed in order for its source. The body stays empty for bridges',
          type: 'null',
          headers: { [EVENT_ID_HEADER]: EventIdHeader }
        },
        400: ProblemRef,
        401: ProblemRef,
        413: ProblemRef,
        503: ProblemRef
      }
    },
    // Before the body is read: a push without the token or signature headers costs no more than its headers.
    onRequest: app.auth.pushBeforeBody,
    // After parsing: a Standard Webhooks signature covers the raw body.
    preHandler: app.auth.push
  }, async (request, reply) => {
    const channel = request.pushChannel as PushChannel
    const result = normalisePush({ headers: request.headers, body: (request.body as Buffer | undefined) ?? Buffer.alloc(0) }, channel)
    if (!result.ok) return sendProblem(reply, 400, result.detail)
    if (result.notes.length > 0) request.log.warn({ notes: result.notes.slice(0, 10) }, 'push accepted without what it could not use')
    let ids
    try {
      ids = await app.store.inbox.append(result.events)
    } catch (err) {
      // Nothing was stored. Data the database refuses can never be stored: retrying would only repeat it.
      if (err instanceof UnstorableError) {
        request.log.error({ reason: err.message }, 'pushed events refused by the database')
        return sendProblem(reply, 400, `the events cannot be stored: ${err.message}`)
      }
      // Nothing was stored; the bridge retries a 503 later.
      if (err instanceof InboxBusy) {
        request.log.warn({ reason: err.message }, 'push shed')
        return sendProblem(reply, 503, `${err.message}; retry later`, { 'retry-after': '5' })
      }
      request.log.error({ err }, 'storing pushed events failed')
      return sendProblem(reply, 503, 'the event store is unavailable; retry later', { 'retry-after': '5' })
    }
    let stored = 0
    result.events.forEach((event, i) => {
      if (ids[i] === null) return
      stored++
      app.metrics.eventsReceived(event.eventType)
    })
    const eventIds = await withOriginals(result.events.map(e => e.dedupeKey), ids)
    const deliveryIds = result.events.map(e => e.deliveryId).filter(id => id !== null).slice(0, 10).map(loggedId)
    request.log.info({ stored, duplicates: ids.length - stored, channel, eventIds: eventIds.slice(0, 10), deliveryIds }, 'events pushed')
    // A bridge reads only the status; people and scripts find their events by these ids.
    if (eventIds.length > 0) reply.header(EVENT_ID_HEADER, eventIds.join(','))
    return reply.code(stored > 0 ? 202 : 200).send()
  })
}
