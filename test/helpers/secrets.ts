import { appendFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

// Every server the suite starts writes its log under .test-logs/, and every secret a test hands
// out is listed there too; test/scan-secrets.mjs (tap's `after`) fails the run if a log holds one.
export const TEST_LOGS = fileURLToPath(new URL('../../.test-logs/', import.meta.url))
let logs = 0

export function recordSecrets (values: Iterable<string | undefined>): void {
  const lines = [...values].filter((v): v is string => v !== undefined && v.length >= 8)
  if (lines.length === 0) return
  mkdirSync(TEST_LOGS, { recursive: true })
  appendFileSync(join(TEST_LOGS, `secrets-${process.pid}.txt`), lines.map(v => JSON.stringify(v)).join('\n') + '\n')
}

/** The secrets in a server's environment: whatever its name says is one. */
export function recordEnvSecrets (env: Record<string, string | undefined>): void {
  recordSecrets(Object.entries(env).filter(([k]) => /PSK|TOKEN|SECRET|_KEY$/.test(k)).map(([, v]) => v))
}

export function serverLogPath (): string {
  mkdirSync(TEST_LOGS, { recursive: true })
  return join(TEST_LOGS, `server-${process.pid}-${logs++}.log`)
}
