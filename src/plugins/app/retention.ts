import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

const EVERY_MS = 60 * 60 * 1000
const FIRST_AFTER_MS = 60 * 1000

/** Prunes history older than RETENTION_DAYS once an hour. */
async function retention (app: FastifyInstance): Promise<void> {
  const { config } = app
  let timer: NodeJS.Timeout | undefined
  const run = async (): Promise<void> => {
    try {
      const pruned = await app.store.prune(config.RETENTION_DAYS)
      if (Object.values(pruned).some(n => n > 0)) app.log.info({ pruned, retentionDays: config.RETENTION_DAYS }, 'pruned old history')
    } catch (err) {
      app.log.warn({ err }, 'pruning old history failed; will try again')
    }
    timer = setTimeout(() => { void run() }, EVERY_MS).unref()
  }
  app.addHook('onReady', async () => { timer = setTimeout(() => { void run() }, FIRST_AFTER_MS).unref() })
  app.addHook('preClose', async () => { clearTimeout(timer) })
}

export default fp(retention, { name: 'retention', dependencies: ['store'] })
