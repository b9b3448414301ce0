// tap's `before`, once per run:
// - each run scans only its own server logs;
// - the server and CLI processes that tests start run the compiled build (test/helpers/process.ts),
//   so dist/ is compiled first when a source changed since the last build (as `npm start` does).
import { execFileSync } from 'node:child_process'
import { rmSync } from 'node:fs'

rmSync(new URL('../.test-logs/', import.meta.url).pathname, { recursive: true, force: true })
// Through env(1), which drops what tap's process tracking adds to every child: the compiler is not
// code under test, and its coverage would otherwise be reported.
execFileSync('env', ['-u', 'NODE_OPTIONS', '-u', 'NODE_V8_COVERAGE', process.execPath, 'scripts/build-if-changed.mjs'],
  { cwd: new URL('..', import.meta.url).pathname, stdio: ['ignore', 2, 2] })
