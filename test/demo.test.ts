import { spawn } from 'node:child_process'
import t from 'tap'
import { eventually } from './helpers/stack.js'

// `npm run demo` as a newcomer runs it: its own process, the fakes inside, three outcomes printed.
t.test('the demo registers one source and reports the two broken ones with their codes', async t => {
  const child = spawn(process.execPath, ['--import', '@tapjs/typescript/import', 'scripts/demo.ts'], {
    env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1', PORT: '0', HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  child.stdout.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr.on('data', (d: Buffer) => { output += d.toString() })
  const exited = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
  t.teardown(() => { child.kill('SIGKILL') })

  // A demo that exits first (or never prints) fails at once, with what it printed.
  let exitCode: number | null | undefined
  void exited.then(code => { exitCode = code })
  await eventually(() => {
    if (exitCode !== undefined && !/Where to look/.test(output)) throw new Error(`the demo exited with ${exitCode} before printing where to look`)
    return /Where to look/.test(output) ? true : undefined
  }, 120_000, 'the demo to print where to look')
    .catch((err: Error) => { throw new Error(`${err.message}; it printed:\n${output.slice(-4000)}`) })
  t.match(output, /source 7 \(a role that trusts Red Hat\): registered\n/)
  t.match(output, /source 8 \(an ARN that is not valid\): unavailable CG1004/)
  t.match(output, /source 9 \(a role whose trust policy denies Red Hat\): unavailable CG3002/)
  const docs = /Swagger UI.*: (http:\S+)/.exec(output)![1]
  t.equal((await fetch(docs)).status, 200, 'the printed Swagger UI address answers')
  t.notMatch(output, /NodeVersionSupportWarning/, 'no AWS SDK warning about the Node version')
  t.notMatch(output, /"url":"\/(healthz|readyz|metrics)/, 'probes are not logged at info')

  child.kill('SIGTERM')
  t.equal(await exited, 0, 'Ctrl-C stops it cleanly')
})
