import { Type } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { checkEvent } from '../src/events/check.js'
import { sendProblem } from '../src/plugins/infrastructure/problem.js'
import { ProblemRef } from '../src/schemas.js'

const CheckBody = Type.Object({
  // A number JSON holds exactly: 1e21 would become "1e+21", and 2^53+1 another source's id.
  source_id: Type.Union([Type.String({ pattern: '^[0-9]{1,20}$' }), Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })],
    { description: 'sources-api source id' })
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
    // Before the schema: its type coercion would turn 2^53 (2^53+1 as JSON reads it) into the string
    // "9007199254740992", which the string branch then accepts.
    preValidation: async (request, reply) => {
      const sourceId = (request.body as { source_id?: unknown } | null)?.source_id
      if (typeof sourceId === 'number' && !(Number.isSafeInteger(sourceId) && sourceId >= 0)) {
        return sendProblem(reply, 400, 'body/source_id must be a string of digits or an integer from 0 to 2^53-1')
      }
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
