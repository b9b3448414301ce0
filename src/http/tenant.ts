import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { decodeIdentity } from '../identity.js'
import { sendProblem } from '../plugins/problem.js'

declare module 'fastify' {
  interface FastifyRequest {
    orgId: string
    accountNumber: string | null
  }
}

/** Scopes every route of this plugin to the org of the caller's x-rh-identity; 401 without one. */
export function requireIdentity (app: FastifyInstance): void {
  if (!app.hasRequestDecorator('orgId')) {
    app.decorateRequest('orgId', '')
    app.decorateRequest('accountNumber', null)
  }
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const identity = decodeIdentity(request.headers['x-rh-identity'] as string | undefined)
    if (!identity.ok) return sendProblem(reply, 401, identity.reason)
    request.orgId = identity.orgId
    request.accountNumber = identity.accountNumber
  })
}

export const identitySecurity = [{ identity: [] }]
