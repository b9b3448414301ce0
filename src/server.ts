import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { assertProductionReady, loadConfig, misspeltSettings, type Config } from './config.js'
import { createLogger } from './log.js'
import { startupProblems } from './startup-errors.js'

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

const app = await buildApp({ config }).catch(fail)
closeWithGrace({ delay: config.SHUTDOWN_GRACE_MS + 30_000 }, async ({ signal, err }) => {
  if (err) app.log.error({ err }, 'closing after an error')
  else app.log.info({ signal }, 'closing')
  await app.close()
})
try {
  await app.listen({ port: config.PORT, host: config.HOST })
} catch (err) {
  await app.close().catch(() => {})
  fail(err)
}
