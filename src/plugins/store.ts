import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type pg from 'pg'
import type { Config } from '../config.js'
import { openDatabase } from '../store/db.js'
import { watchDatabase, type DatabaseHealth } from '../store/health.js'
import { createInbox, type Inbox } from '../store/inbox.js'
import { createOutbox, type Outbox } from '../store/outbox.js'
import { createRegistrations, type Registrations } from '../store/registrations.js'

export interface Store {
  pool: pg.Pool
  /** The embedded PostgreSQL, which no other process shares. */
  embedded: boolean
  health: DatabaseHealth
  inbox: Inbox
  outbox: Outbox
  registrations: Registrations
}

declare module 'fastify' {
  interface FastifyInstance {
    store: Store
  }
}

async function store (app: FastifyInstance, { config }: { config: Config }): Promise<void> {
  const db = await openDatabase({
    databaseUrl: config.DATABASE_URL,
    caPath: config.DATABASE_CA_PATH,
    dataDir: config.DATA_DIR,
    embeddedPort: config.EMBEDDED_PG_PORT,
    log: app.log
  })
  const health = watchDatabase({ pool: db.pool, dataDir: db.dataDir, intervalMs: 2000, log: app.log })
  app.decorate('store', {
    pool: db.pool,
    embedded: db.embedded,
    health,
    inbox: createInbox(db.pool),
    outbox: createOutbox(db.pool),
    registrations: createRegistrations(db.pool)
  })
  app.addHook('onClose', async () => {
    health.stop()
    await db.close()
  })
}

export default fp(store, { name: 'store' })
