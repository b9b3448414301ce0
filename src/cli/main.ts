import { parseArgs } from 'node:util'
import { CliError, createClient } from './client.js'
import * as commands from './commands.js'
import { createOutput, type BarStream } from './output.js'

export const USAGE = `cloudoreg: the operator's command line over cloudoreg's internal API

usage:
  cloudoreg status <source_id>               a source's registration and what its events wait for (any org)
  cloudoreg history <source_id>              a source's timeline, every attempt of every event
  cloudoreg dead-letters list [filters]      events that ran out of attempts [--limit n] [--offset n] [--include-replayed]
  cloudoreg dead-letters replay [filters]    replay them, each behind its source's pending events, and watch
                                             [--dry-run: only list what would be replayed] [--limit n] [--no-wait]
  cloudoreg tasks watch <task_id>            follow a background task (a bulk replay) until it ends
  cloudoreg reconcile [--apply]              compare with sources-api and RHSM (a dry run unless --apply)

filters: --upstream sources|sts|rhsm|kafka  --error-code <503|Throttling|...>  --event-type <type>
         --org-id <org>  --since <ISO time>  --until <ISO time>
options: --json (JSON instead of tables)  --url <base URL>  --help

environment: CLOUDOREG_URL (default http://localhost:8000), CLOUDOREG_TOKEN (the service's INTERNAL_TOKEN)
exit codes: 0 ok, 1 the operation failed (the server's problem detail is printed), 2 wrong usage`

const OPTIONS = {
  json: { type: 'boolean' },
  url: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  'error-code': { type: 'string' },
  upstream: { type: 'string' },
  'event-type': { type: 'string' },
  'org-id': { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
  limit: { type: 'string' },
  offset: { type: 'string' },
  'include-replayed': { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  'no-wait': { type: 'boolean' },
  apply: { type: 'boolean' }
} as const

const usage = (problem: string): CliError => new CliError(`${problem}\n\n${USAGE}`, 2)

function integer (name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  if (!/^\d{1,15}$/.test(value)) throw usage(`--${name} must be a whole number, not ${JSON.stringify(value)}`)
  return Number(value)
}

function id (what: string, value: string | undefined): string {
  if (value === undefined || !/^\d{1,20}$/.test(value)) throw usage(`${what} must be a number${value === undefined ? '' : `, not ${JSON.stringify(value)}`}`)
  return value
}

export interface Io {
  env: NodeJS.ProcessEnv
  stdout: (text: string) => void
  stderr: (text: string) => void
  /** Where progress bars go (stderr); drawn only when it is a terminal. */
  bars: BarStream
  pollMs?: number
}

/** Runs one command; resolves with the exit code. Failures are printed in words, never as a stack trace. */
export async function main (argv: string[], io: Io): Promise<number> {
  try {
    let parsed
    try {
      parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true })
    } catch (err) {
      throw usage((err as Error).message)
    }
    const { values: v, positionals: [command, sub, arg] } = parsed
    if (v.help === true || command === undefined || command === 'help') {
      io.stdout(`${USAGE}\n`)
      return command === undefined && v.help !== true ? 2 : 0
    }
    const client = createClient(v.url ?? io.env.CLOUDOREG_URL ?? 'http://localhost:8000', io.env.CLOUDOREG_TOKEN)
    const c: commands.Context = { client, out: createOutput(v.json === true, io.stdout), pollMs: io.pollMs ?? 1000, note: text => io.stderr(`${text}\n`), bars: io.bars }
    const filters: commands.Filters = {
      error_code: v['error-code'], upstream: v.upstream, event_type: v['event-type'], org_id: v['org-id'], since: v.since, until: v.until
    }
    switch (command) {
      case 'status': return await commands.status(c, id('the source id', sub))
      case 'history': return await commands.history(c, id('the source id', sub))
      case 'dead-letters':
        if (sub === 'list') return await commands.listDeadLetters(c, filters, { limit: integer('limit', v.limit), offset: integer('offset', v.offset), includeReplayed: v['include-replayed'] === true })
        if (sub === 'replay') return await commands.replayDeadLetters(c, filters, { limit: integer('limit', v.limit), dryRun: v['dry-run'] === true, wait: v['no-wait'] !== true })
        throw usage(`dead-letters needs list or replay${sub === undefined ? '' : `, not ${JSON.stringify(sub)}`}`)
      case 'tasks':
        if (sub === 'watch') return await commands.watchTask(c, id('the task id', arg))
        throw usage(`tasks needs watch${sub === undefined ? '' : `, not ${JSON.stringify(sub)}`}`)
      case 'reconcile': return await commands.reconcile(c, v.apply === true)
      default: throw usage(`unknown command ${JSON.stringify(command)}`)
    }
  } catch (err) {
    if (err instanceof CliError) {
      io.stderr(`cloudoreg: ${err.message}\n`)
      return err.exitCode
    }
    // A bug of the CLI itself: still one line, not a stack trace.
    io.stderr(`cloudoreg: unexpected failure: ${(err as Error).message}\n`)
    return 1
  }
}
