import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type pg from 'pg'
import type { Config } from '../config.js'
import { openDatabase } from '../store/db.js'
import { createInbox, type Inbox } from '../store/inbox.js'
import { createOutbox, type Outbox } from '../store/outbox.js'
import { createRegistrations, type Registrations } from '../store/registrations.js'

export interface Store {
  pool: pg.Pool
  /** The embedded PostgreSQL, which no other process shares. */
  embedded: boolean
  inbox: Inbox
  outbox: Outbox
  registrations: Registrations
}

declare module 'fastify' {
  interface FastifyInstance {
    store: Store
  }
}

/** Ten full group commits: enough for any burst a bridge sends, and a few MB of memory at most. */
const MAX_QUEUED_EVENTS = 20_000

async function store (app: FastifyInstance, { config }: { config: Config }): Promise<void> {
  const db = await openDatabase({
    databaseUrl: config.DATABASE_URL,
    caPath: config.DATABASE_CA_PATH,
    dataDir: config.DATA_DIR,
    embeddedPort: config.EMBEDDED_PG_PORT,
    poolSize: config.DATABASE_POOL_SIZE,
    timeoutMs: config.DATABASE_TIMEOUT_MS,
    log: app.log
  })
  app.decorate('store', {
    pool: db.pool,
    embedded: db.embedded,
    inbox: createInbox(db.pool, { maxQueuedEvents: MAX_QUEUED_EVENTS, maxWaitMs: config.DATABASE_TIMEOUT_MS }),
    outbox: createOutbox(db.pool),
    registrations: createRegistrations(db.pool)
  })
  app.addHook('onClose', async () => { await db.close() })
}

export default fp(store, { name: 'store' })
