import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { createRoleVerifier, type RoleVerifier, type StsOptions } from '../src/aws/sts.js'
import { startFakeSts } from '../test/helpers/fake-sts.js'

// CPU per role verification (AssumeRole through the SDK, then GetCallerIdentity), this tree's
// src/aws/sts.ts against the one at OLD_REV, measured in the same run, rounds alternating:
//   TS_NODE_TRANSPILE_ONLY=1 node --import @tapjs/typescript/import bench/sts-verify.ts [OLD_REV]
// OLD_REV defaults to the last commit whose sts.ts signed GetCallerIdentity with its own SigV4.
// The fake STS runs in a child process, so that only the verifier's CPU is counted here.
const OLD_REV = process.argv[2] ?? '0f7dcbe9e769fc9a3babf8f69b1ae99ae3b55881'
const ROUNDS = 5
const PER_ROUND = 1000
const CONCURRENCY = 64
const TICK = 100 // USER_HZ: /proc times are in 1/100 s

type CreateRoleVerifier = (o: StsOptions) => RoleVerifier

/** sts.ts as it was at `rev`, imported from a copy in bench/ whose relative imports point into src/. */
async function oldVerifier (rev: string): Promise<CreateRoleVerifier> {
  const dir = mkdtempSync(fileURLToPath(new URL('./.sts-old-', import.meta.url)))
  try {
    const source = execFileSync('git', ['show', `${rev}:src/aws/sts.ts`], { encoding: 'utf8' })
    writeFileSync(join(dir, 'sts.ts'), source.replaceAll("from '../", "from '../../src/"))
    return (await import(pathToFileURL(join(dir, 'sts.ts')).href) as { createRoleVerifier: CreateRoleVerifier }).createRoleVerifier
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** CPU milliseconds per verification over `PER_ROUND` verifications, `CONCURRENCY` at a time. */
async function round (verifier: RoleVerifier, first: number): Promise<number> {
  let next = 0
  const before = process.cpuUsage()
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < PER_ROUND) {
      const account = String(100_000_000_000 + first + next++)
      const r = await verifier.verifyRole({ roleArn: `arn:aws:iam::${account}:role/r`, awsAccountId: account, externalId: 'bench' })
      if (!r.ok) throw new Error(`verification failed: ${r.reason}`)
    }
  }))
  const used = process.cpuUsage(before)
  return (used.user + used.system) / 1000 / PER_ROUND
}

const cpuSeconds = (pid: number): number => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(f[11]) + Number(f[12])) / TICK
}
const machineBusy = (): number => {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  return (f.reduce((a, b) => a + b, 0) - f[3] - f[4]) / TICK
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function main (): Promise<void> {
  const fake = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--fake-sts'], { stdio: ['ignore', 'pipe', 'inherit'] })
  process.on('exit', () => fake.kill('SIGKILL'))
  const [line] = await once(fake.stdout!, 'data') as [Buffer]
  const endpoint = line.toString().trim()
  // The service's own credentials, from the SDK's default chain as in production.
  process.env.AWS_ACCESS_KEY_ID = 'AKIDBENCH'
  process.env.AWS_SECRET_ACCESS_KEY = 'bench-secret'
  const options: StsOptions = { region: 'eu-central-1', endpoint, timeoutMs: 5000, attempts: 1, maxSockets: CONCURRENCY }
  const verifiers = { old: (await oldVerifier(OLD_REV))(options), new: createRoleVerifier(options) }

  const ms: Record<'old' | 'new', number[]> = { old: [], new: [] }
  let first = 0
  // A warm-up round each (JIT, connections), then alternating rounds.
  for (const which of ['old', 'new'] as const) { await round(verifiers[which], first); first += PER_ROUND }
  const [machine0, self0, fake0] = [machineBusy(), process.cpuUsage(), cpuSeconds(fake.pid!)]
  for (let i = 0; i < ROUNDS; i++) {
    for (const which of ['old', 'new'] as const) {
      ms[which].push(await round(verifiers[which], first))
      first += PER_ROUND
    }
  }
  const self = process.cpuUsage(self0)
  const fakeCpu = cpuSeconds(fake.pid!) - fake0
  const others = machineBusy() - machine0 - (self.user + self.system) / 1e6 - fakeCpu
  for (const v of Object.values(verifiers)) v.close()
  fake.kill('SIGTERM')

  const fmt = (xs: number[]): string => xs.map(x => x.toFixed(2)).join(' / ')
  console.log(`CPU per verification (${ROUNDS} rounds of ${PER_ROUND}, ${CONCURRENCY} at a time, fake STS in a child process):`)
  console.log(`  old (${OLD_REV.slice(0, 7)}, hand-written SigV4):    median ${median(ms.old).toFixed(2)} ms   (rounds ${fmt(ms.old)})`)
  console.log(`  new (this tree, @smithy/signature-v4): median ${median(ms.new).toFixed(2)} ms   (rounds ${fmt(ms.new)})`)
  console.log(`  new / old: ${(median(ms.new) / median(ms.old)).toFixed(2)}`)
  console.log(`  meanwhile: fake STS ${fakeCpu.toFixed(1)} s CPU, other processes on the machine ${others.toFixed(1)} s CPU`)
}

if (process.argv[2] === '--fake-sts') {
  const sts = await startFakeSts()
  console.log(sts.url)
} else {
  await main()
}
