import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { createMetrics, type Metrics } from '../metrics.js'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics
  }
}

async function metrics (app: FastifyInstance): Promise<void> {
  app.decorate('metrics', createMetrics(app.store.pool))
}

export default fp(metrics, { name: 'metrics', dependencies: ['store'] })
