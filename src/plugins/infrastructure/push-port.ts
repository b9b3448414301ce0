import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../../config.js'
import { boundServer, listenWithApp } from './extra-listener.js'
import { sendProblem } from './problem.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Where the push route listens when PUSH_PORT gives it its own port (once ready), else null. */
    pushAddress: AddressInfo | null
  }
  interface FastifyContextConfig {
    /** The route that takes events from the bridge; with PUSH_PORT, served there and only there. */
    isPush?: boolean
  }
}

type PortSettings = Pick<Config, 'PORT' | 'PUSH_PORT'>

/** Whether the push route moves off the main port. 0 asks for a free port of its own. */
export function pushOnOwnPort (config: PortSettings): boolean {
  return config.PUSH_PORT !== undefined && (config.PUSH_PORT === 0 || config.PUSH_PORT !== config.PORT)
}

/**
 * With PUSH_PORT, the push route gets a port of its own, so that a network
 * policy, which sees ports and not paths, can admit only the bridge to it.
 * Both ports run the same app: one set of hooks, errors and shutdown.
 */
async function pushPort (app: FastifyInstance): Promise<void> {
  const { config } = app
  if (!pushOnOwnPort(config)) {
    app.decorate('pushAddress', null)
    return
  }
  const server = createServer(app.routing)
  boundServer(server, config)
  const address = listenWithApp(app, server, config.PUSH_PORT!, config.HOST, 'pushes')
  app.decorate('pushAddress', { getter: address })
  app.addHook('onRequest', async (request, reply) => {
    const onPushPort = request.socket.localPort !== undefined && request.socket.localPort === address()?.port
    if (onPushPort === (request.routeOptions.config.isPush === true)) return
    const detail = onPushPort
      ? `no route ${request.method} ${request.url.split('?')[0]} on the push port`
      : `no route ${request.method} ${request.url.split('?')[0]} on this port: pushes go to PUSH_PORT`
    return sendProblem(reply, 404, detail)
  })
}

export default fp(pushPort, { name: 'push-port' })
