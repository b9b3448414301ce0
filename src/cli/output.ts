import { SingleBar } from 'cli-progress'

export interface Output {
  json: boolean
  /** One value as JSON (with --json), else the lines given. */
  print: (value: unknown, text: () => string | string[] | Array<Record<string, unknown>>) => void
}

/** A readable table: one row per object, columns in the order of the first row's keys. */
export function table (rows: Array<Record<string, unknown>>): string {
  if (rows.length === 0) return '(none)'
  const columns = Object.keys(rows[0])
  const cell = (v: unknown): string => v === null || v === undefined ? '-' : String(v)
  const widths = columns.map(c => Math.max(c.length, ...rows.map(r => cell(r[c]).length)))
  const line = (values: string[]): string => values.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd()
  return [line(columns), line(widths.map(w => '-'.repeat(w))), ...rows.map(r => line(columns.map(c => cell(r[c]))))].join('\n')
}

export function createOutput (json: boolean, write: (text: string) => void = text => { process.stdout.write(text) }): Output {
  return {
    json,
    print (value, text) {
      if (json) {
        write(`${JSON.stringify(value, null, 2)}\n`)
        return
      }
      const t = text()
      const lines = typeof t === 'string' ? [t] : t.length > 0 && typeof t[0] === 'object' ? [table(t as Array<Record<string, unknown>>)] : t as string[]
      write(`${lines.join('\n')}\n`)
    }
  }
}

export interface Progress {
  update: (value: number, total: number, counts: Record<string, number>) => void
  stop: () => void
}

/** Where a progress bar may be drawn: a terminal. */
export type BarStream = NodeJS.WritableStream & { isTTY?: boolean }

/**
 * A live bar with the counts and the rate (cli-progress), on `stream` (stderr); drawn only on a
 * terminal, and never with --json, so that what is piped stays clean.
 */
export function progressBar (label: string, countNames: string[], enabled: boolean, stream: BarStream): Progress {
  if (!enabled || stream.isTTY !== true) return { update: () => {}, stop: () => {} }
  const counts = countNames.map(n => `${n} {${n}}`).join(' · ')
  const bar = new SingleBar({
    format: `${label} [{bar}] {percentage}% | {value}/{total} | ${counts} | {rate}/s | {duration_formatted}`,
    hideCursor: true,
    stream
  })
  const started = Date.now()
  let running = false
  return {
    update (value, total, payload) {
      const rate = (value / Math.max(0.001, (Date.now() - started) / 1000)).toFixed(1)
      if (!running) {
        bar.start(total, value, { ...payload, rate })
        running = true
      } else {
        bar.setTotal(total)
        bar.update(value, { ...payload, rate })
      }
    },
    stop () {
      if (running) bar.stop()
    }
  }
}
