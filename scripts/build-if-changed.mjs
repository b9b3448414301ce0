// npm start's prestart: compile only when a source changed since the last build. A full tsc takes
// 4-6 s of CPU (more on a busy machine), which a restart with a bad setting used to pay each time.
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const STAMP = 'dist/.build-stamp'
const INPUTS = ['src', 'routes', 'tsconfig.json', 'tsconfig.build.json', 'package-lock.json']

function newest (path) {
  const stat = statSync(path)
  if (!stat.isDirectory()) return stat.mtimeMs
  return readdirSync(path).reduce((max, name) => Math.max(max, newest(join(path, name))), stat.mtimeMs)
}

const built = existsSync(STAMP) ? statSync(STAMP).mtimeMs : 0
if (INPUTS.some(path => existsSync(path) && newest(path) >= built)) {
  const started = Date.now()
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' })
  // Dated when the build began: a file saved during the build is newer, and triggers the next one.
  writeFileSync(STAMP, `${new Date(started).toISOString()}\n`)
  utimesSync(STAMP, new Date(started), new Date(started))
}
