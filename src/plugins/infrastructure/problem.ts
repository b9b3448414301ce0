import { STATUS_CODES } from 'node:http'
import { Type, type Static } from '@sinclair/typebox'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

export const Problem = Type.Object({
  type: Type.String({ description: 'about:blank, or a URI naming the problem' }),
  title: Type.String(),
  status: Type.Integer(),
  detail: Type.Optional(Type.String({ description: 'What was wrong with this request' })),
  instance: Type.Optional(Type.String())
}, { $id: 'Problem', description: 'RFC 9457 problem details' })

export type ProblemBody = Static<typeof Problem>

/** Every error this service answers is problem+json, with a detail that says what was wrong. */
export function sendProblem (reply: FastifyReply, status: number, detail?: string, headers?: Record<string, string>): FastifyReply {
  const body: ProblemBody = { type: 'about:blank', title: STATUS_CODES[status] ?? 'Error', status, instance: reply.request.url }
  if (detail !== undefined) body.detail = detail
  if (headers) reply.headers(headers)
  return reply.code(status).type('application/problem+json').send(body)
}

async function problem (app: FastifyInstance): Promise<void> {
  app.addSchema(Problem)
  app.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const status = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500
    if (status === 503) {
      request.log.warn({ reason: err.message }, 'answered 503')
      return sendProblem(reply, 503, err.message, { 'retry-after': String(reply.getHeader('retry-after') ?? 5) })
    }
    if (status >= 500 && app.hasDecorator('store') && app.store.health.down()) {
      // Said once by the health monitor; a stack trace per request would bury it.
      return sendProblem(reply, 503, `database unavailable: ${app.store.health.problem()!.detail}`, { 'retry-after': '5' })
    }
    if (status >= 500) {
      request.log.error({ err }, 'request failed')
      return sendProblem(reply, status, 'internal error; see the service log for the request id')
    }
    const detail = err.validation ? `${err.validationContext ?? 'request'}: ${err.message}` : err.message
    return sendProblem(reply, status, detail)
  })
  app.setNotFoundHandler((request, reply) => sendProblem(reply, 404, `no route ${request.method} ${request.url.split('?')[0]}`))
}

export default fp(problem, { name: 'problem' })
