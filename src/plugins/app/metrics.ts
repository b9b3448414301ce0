import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../../config.js'
import { createMetrics, type Metrics } from '../../metrics.js'
import { boundServer, listenWithApp } from '../infrastructure/extra-listener.js'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics
    /** Where GET /metrics listens when METRICS_PORT gives it its own port (once ready), else null. */
    metricsAddress: AddressInfo | null
  }
}

type PortSettings = Pick<Config, 'PORT' | 'METRICS_PORT'>

/** Whether /metrics moves off the main port. 0 asks for a free port of its own, even when PORT is 0. */
export function metricsOnOwnPort (config: PortSettings): boolean {
  return config.METRICS_PORT !== undefined && (config.METRICS_PORT === 0 || config.METRICS_PORT !== config.PORT)
}

async function metrics (app: FastifyInstance): Promise<void> {
  const { config } = app
  const m = createMetrics(app.store.stats)
  app.decorate('metrics', m)
  if (!metricsOnOwnPort(config)) {
    app.decorate('metricsAddress', null)
    return
  }

  // Plain node:http: one route, and none of the main server's hooks (load shedding, problem replies).
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'GET' || new URL(req.url ?? '/', 'http://metrics').pathname !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: only GET /metrics is served here\n')
      return
    }
    m.registry.metrics().then(
      body => { res.writeHead(200, { 'content-type': m.registry.contentType }).end(body) },
      (err: unknown) => {
        app.log.warn({ err }, 'collecting metrics failed')
        res.writeHead(500, { 'content-type': 'text/plain' }).end('collecting metrics failed\n')
      })
  })
  boundServer(server, config)
  const address = listenWithApp(app, server, config.METRICS_PORT!, config.HOST, 'metrics')
  app.decorate('metricsAddress', { getter: address })
}

export default fp(metrics, { name: 'metrics', dependencies: ['store'] })
