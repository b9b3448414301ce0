import type { FastifyInstance } from 'fastify'
import { normalisePush } from '../src/ingress/normalise.js'
import { sendProblem } from '../src/plugins/infrastructure/problem.js'
import { ProblemRef } from '../src/schemas.js'

const BODY_LIMIT = 4 * 1024 * 1024

export default async function events (app: FastifyInstance): Promise<void> {
  // Bridges send JSON, CloudEvents types, or (Knative) no Content-Type at all; a 415 would drop
  // the event for good, so every body is taken raw and the push format decides how to read it.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: BODY_LIMIT }, (_request, body, done) => { done(null, body) })

  app.post('/internal/v1/events', {
    bodyLimit: BODY_LIMIT,
    config: { isPush: true },
    schema: {
      tags: ['ingress'],
      summary: 'Push sources-api events',
      description: 'Accepts sources-native pushes (event in the body, Kafka headers as HTTP headers), CloudEvents binary ' +
        '(Knative KafkaSource, no Content-Type needed), CloudEvents structured and batch, and Strimzi-style record batches. ' +
        'Replies 202 once every new event is durably stored, 200 when all were already stored (a redelivery). ' +
        'When PUSH_TOKEN or PUSH_WEBHOOK_SECRET is set, a push must carry the token (bearer or dapr-api-token) or a valid ' +
        'Standard Webhooks signature (webhook-id, webhook-timestamp within 5 minutes, webhook-signature v1).',
      security: [{ bearer: [] }, { dapr: [] }, {}],
      response: {
        200: { description: 'All events were already stored (redelivery)', type: 'null' },
        202: { description: 'Stored; will be processed in order for its source', type: 'null' },
        400: ProblemRef,
        401: ProblemRef,
        413: ProblemRef,
        503: ProblemRef
      }
    },
    // After parsing: a Standard Webhooks signature covers the raw body.
    preHandler: app.auth.push
  }, async (request, reply) => {
    const result = normalisePush({ headers: request.headers, body: (request.body as Buffer | undefined) ?? Buffer.alloc(0) })
    if (!result.ok) return sendProblem(reply, 400, result.detail)
    let ids
    try {
      ids = await app.store.inbox.append(result.events)
    } catch (err) {
      // Nothing was stored; the bridge retries a 503 later.
      request.log.error({ err }, 'storing pushed events failed')
      return sendProblem(reply, 503, 'the event store is unavailable; retry later', { 'retry-after': '5' })
    }
    let stored = 0
    result.events.forEach((event, i) => {
      if (ids[i] === null) return
      stored++
      app.metrics.eventsReceived(event.eventType)
    })
    request.log.info({ stored, duplicates: ids.length - stored, deliveryIds: result.events.map(e => e.deliveryId).filter(Boolean).slice(0, 10) }, 'events pushed')
    return reply.code(stored > 0 ? 202 : 200).send()
  })
}
