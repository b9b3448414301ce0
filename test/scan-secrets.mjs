// tap's `after`: fails the run when any server log written by the suite holds a secret a test handed out.
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const dir = new URL('../.test-logs/', import.meta.url).pathname
if (!existsSync(dir)) {
  console.log('# secret scan: no server logs were written')
  process.exit(0)
}
const files = readdirSync(dir)
const secrets = new Set(files.filter(f => f.startsWith('secrets-')).flatMap(f =>
  readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean).map(line => JSON.parse(line))))
let lines = 0
const found = []
for (const f of files.filter(f => f.endsWith('.log'))) {
  const text = readFileSync(join(dir, f), 'utf8')
  lines += text.split('\n').length - 1
  for (const secret of secrets) if (text.includes(secret)) found.push(`${f}: ${secret.slice(0, 4)}… (${secret.length} chars)`)
}
console.log(`# secret scan: ${lines} log lines in ${files.length - [...files].filter(f => f.startsWith('secrets-')).length} server logs, ${secrets.size} secrets`)
if (found.length > 0) {
  console.log('not ok - secrets found in server logs:\n' + found.map(f => `#   ${f}`).join('\n'))
  process.exit(1)
}
