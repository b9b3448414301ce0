import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../../config.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The settings, validated once by loadConfig before the app is built. */
    config: Config
  }
}

/** Decorates the app with its configuration once; every other plugin and route reads `app.config`. */
async function config (app: FastifyInstance, options: { config: Config }): Promise<void> {
  app.decorate('config', options.config)
}

export default fp(config, { name: 'config' })
