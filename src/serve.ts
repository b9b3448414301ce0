import closeWithGrace from 'close-with-grace'
import { buildApp, type AppOptions } from './app.js'
import { assertProductionReady, loadConfig, misspeltSettings, type Config } from './config.js'
import { createLogger } from './log.js'
import { startupProblems } from './startup-errors.js'

/**
 * The service as a process: configuration from the environment, the app, close on a signal, listen.
 * `src/server.ts` (what `npm start` runs) calls it with no options; a test-only entry injects hooks or span processors.
 */
export async function serve (options: Pick<AppOptions, 'hooks' | 'spanProcessors'> = {}): Promise<void> {
  const early = await createLogger(process.env.LOG_LEVEL === 'silent' ? 'silent' : 'info')
  let config: Config | undefined

  /** A start-up that cannot work: one line per thing to change, no stack trace; anything else keeps its trace. */
  function fail (err: unknown): never {
    const problems = startupProblems(err, config)
    if (problems !== undefined) for (const problem of problems) early.fatal(problem)
    else early.fatal({ err }, 'start-up failed')
    early.flush()
    process.exit(1)
  }

  try {
    for (const warning of misspeltSettings()) early.warn(warning)
    config = loadConfig()
    assertProductionReady(config)
  } catch (err) {
    fail(err)
  }

  const settings = config
  const app = await buildApp({ config: settings, ...options }).catch(fail)
  closeWithGrace({ delay: settings.SHUTDOWN_GRACE_MS + 30_000 }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'closing after an error')
    else app.log.info({ signal }, 'closing')
    await app.close()
  })
  try {
    await app.listen({ port: settings.PORT, host: settings.HOST })
  } catch (err) {
    await app.close().catch(() => {})
    fail(err)
  }
}
