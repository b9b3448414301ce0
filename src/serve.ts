import closeWithGrace from 'close-with-grace'
import { pino } from 'pino'
import { buildApp, type AppOptions } from './app.js'
import { assertProductionReady, loadConfig } from './config.js'

/**
 * The service as a process: configuration from the environment, the app, close on a signal, listen.
 * `src/server.ts` (what `npm start` runs) calls it with no options; a test-only entry injects hooks or span processors.
 */
export async function serve (options: Pick<AppOptions, 'hooks' | 'spanProcessors'> = {}): Promise<void> {
  let config
  try {
    config = loadConfig()
    assertProductionReady(config)
  } catch (err) {
    pino().fatal((err as Error).message)
    process.exit(1)
  }

  const app = await buildApp({ config, ...options })
  closeWithGrace({ delay: config.SHUTDOWN_GRACE_MS + 30_000 }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'closing after an error')
    else app.log.info({ signal }, 'closing')
    await app.close()
  })
  await app.listen({ port: config.PORT, host: config.HOST })
}
