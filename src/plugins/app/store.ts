import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { openDatabase } from '../../store/db.js'
import { watchDatabase } from '../../store/health.js'
import { createStore, type Store } from '../../store/index.js'

declare module 'fastify' {
  interface FastifyInstance {
    store: Store
  }
}

/** Ten full group commits: enough for any burst a bridge sends, and a few MB of memory at most. */
const MAX_QUEUED_EVENTS = 20_000

async function store (app: FastifyInstance): Promise<void> {
  const { config } = app
  const db = await openDatabase({
    databaseUrl: config.DATABASE_URL,
    caPath: config.DATABASE_CA_PATH,
    dataDir: config.DATA_DIR,
    embeddedPort: config.EMBEDDED_PG_PORT,
    poolSize: config.DATABASE_POOL_SIZE,
    timeoutMs: config.DATABASE_TIMEOUT_MS,
    log: app.log
  })
  const health = watchDatabase({ pool: db.pool, dataDir: db.dataDir, intervalMs: 2000, log: app.log })
  app.decorate('store', createStore(db, health, { maxQueuedEvents: MAX_QUEUED_EVENTS, maxWaitMs: config.DATABASE_TIMEOUT_MS }))
  app.addHook('onClose', async () => {
    health.stop()
    await db.close()
  })
}

export default fp(store, { name: 'store' })
