import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { openDatabase } from '../../store/db.js'
import { createStore, type Store } from '../../store/index.js'

declare module 'fastify' {
  interface FastifyInstance {
    store: Store
  }
}

async function store (app: FastifyInstance): Promise<void> {
  const { config } = app
  const db = await openDatabase({
    databaseUrl: config.DATABASE_URL,
    caPath: config.DATABASE_CA_PATH,
    dataDir: config.DATA_DIR,
    embeddedPort: config.EMBEDDED_PG_PORT,
    log: app.log
  })
  app.decorate('store', createStore(db))
  app.addHook('onClose', async () => { await db.close() })
}

export default fp(store, { name: 'store' })
