import { writeSync } from 'node:fs'
import { parseArgs } from 'node:util'
import type { AppHooks } from '../../src/app.js'
import { serve } from '../../src/serve.js'

// Test-only entry: the service as src/server.ts runs it, with fault hooks injected through
// buildApp's options, chosen by arguments (startServer's `entry`):
//   --kill-after-inbox-commit N  SIGKILLs the process after the inbox commit of the N-th consumed
//                                batch that stored a new record, before that batch's offset commit.
const { values } = parseArgs({ options: { 'kill-after-inbox-commit': { type: 'string' } } })
const hooks: AppHooks = {}

let killAfter = Number(values['kill-after-inbox-commit'] ?? 0)
if (killAfter > 0) {
  hooks.afterInboxCommit = batch => {
    if (batch.storedTypes.length === 0 || --killAfter > 0) return
    // Written synchronously: pino's asynchronous stdout would lose the line with the process.
    writeSync(2, JSON.stringify({
      level: 40,
      time: Date.now(),
      partition: batch.partition,
      offsets: `${batch.firstOffset}-${batch.lastOffset}`,
      stored: batch.storedTypes.length,
      msg: 'test fault: killing the process after the inbox commit, before the offset commit'
    }) + '\n')
    process.kill(process.pid, 'SIGKILL')
  }
}

await serve({ hooks })
