import { Type } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { checkEvent } from '../src/events/check.js'
import { ProblemRef } from '../src/schemas.js'

const CheckBody = Type.Object({
  source_id: Type.Union([Type.String({ pattern: '^[0-9]{1,20}$' }), Type.Integer({ minimum: 0 })], { description: 'sources-api source id' })
})

/** sources-api's periodic availability check: answer at once, re-verify on the source's queue. */
export default async function availability (fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  app.post('/internal/api/cloudoreg/v1/availability_status', {
    schema: {
      tags: ['lifecycle'],
      summary: 'Re-check a source (sources-api\'s periodic availability check)',
      description: 'Answers 204 at once and queues a re-verification behind the source\'s other events. A paused or removed ' +
        'source is not re-checked. An unknown source is looked up in sources-api: a cloud-meter application with an ARN ' +
        'authentication registered before cloudoreg existed is registered now.',
      security: [{ identity: [] }],
      body: CheckBody,
      response: { 204: { description: 'Accepted (or nothing to do)', type: 'null' }, 400: ProblemRef, 401: ProblemRef, 503: ProblemRef }
    },
    // After validation, as before: a malformed body is a 400 whoever sends it.
    preHandler: app.auth.sourcesCaller
  }, async (request, reply) => {
    const { tenant } = request
    const sourceId = String(request.body.source_id)
    const registration = await app.store.registrations.findBySource(tenant.orgId, sourceId)
    if (registration?.state === 'paused' || registration?.state === 'removed') return reply.code(204).send()
    await app.store.inbox.append([checkEvent(tenant, sourceId, 'sources-api')])
    return reply.code(204).send()
  })
}
