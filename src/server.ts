import closeWithGrace from 'close-with-grace'
import { pino } from 'pino'
import { buildApp } from './app.js'
import { assertProductionReady, loadConfig } from './config.js'

let config
try {
  config = loadConfig()
  assertProductionReady(config)
} catch (err) {
  pino().fatal((err as Error).message)
  process.exit(1)
}

const app = await buildApp({ config })
closeWithGrace({ delay: config.SHUTDOWN_GRACE_MS + 30_000 }, async ({ signal, err }) => {
  if (err) app.log.error({ err }, 'closing after an error')
  else app.log.info({ signal }, 'closing')
  await app.close()
})
await app.listen({ port: config.PORT, host: config.HOST })
