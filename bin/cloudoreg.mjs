#!/usr/bin/env node
// `cloudoreg` / `npx cloudoreg`: in a checkout, compile first when a source changed (as `npm start`
// does, its output on stderr so that --json stays clean), then run the compiled CLI.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
if (existsSync(`${root}scripts/build-if-changed.mjs`) && existsSync(`${root}node_modules/typescript`)) {
  const build = spawnSync(process.execPath, ['scripts/build-if-changed.mjs'], { cwd: root, stdio: ['ignore', 2, 2] })
  if (build.status !== 0) {
    process.stderr.write('cloudoreg: compiling the CLI failed (see above)\n')
    process.exit(1)
  }
}
await import('../dist/src/cli/cloudoreg.js')
