import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { STSClient } from '@aws-sdk/client-sts'
import { callerIdentityTarget, createRoleVerifier, type RoleVerifier, type SigningKey, type StsOptions } from '../src/aws/sts.js'
import { startFakeSts } from '../test/helpers/fake-sts.js'

// CPU per role verification (AssumeRole through the SDK, then GetCallerIdentity) and per
// GetCallerIdentity signature alone, this tree's src/aws/sts.ts against the one at OLD_REV, measured
// in the same run, rounds alternating (BENCH_ROUNDS of them, 7 by default):
//   TS_NODE_TRANSPILE_ONLY=1 node --import @tapjs/typescript/import bench/sts-verify.ts [OLD_REV]
// OLD_REV defaults to the last commit whose sts.ts signed GetCallerIdentity with its own SigV4.
// The fake STS runs in a child process, so that only the verifier's CPU is counted here.
const OLD_REV = process.argv[2] ?? '0f7dcbe9e769fc9a3babf8f69b1ae99ae3b55881'
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7)
const VERIFICATIONS_PER_ROUND = 1000
const SIGNATURES_PER_ROUND = 5000
const CONCURRENCY = 64
const TICK = 100 // USER_HZ: /proc times are in 1/100 s

interface OldSts {
  createRoleVerifier: (o: StsOptions) => RoleVerifier
  signatureV4: (r: { method: string, path: string, headers: Record<string, string>, body: string, region: string, service: string, key: SigningKey }) => string
}

/** sts.ts as it was at `rev`, imported from a copy in bench/ whose relative imports point into src/. */
async function oldSts (rev: string): Promise<OldSts> {
  const dir = mkdtempSync(fileURLToPath(new URL('./.sts-old-', import.meta.url)))
  try {
    const source = execFileSync('git', ['show', `${rev}:src/aws/sts.ts`], { encoding: 'utf8' })
    writeFileSync(join(dir, 'sts.ts'), source.replaceAll("from '../", "from '../../src/"))
    return await import(pathToFileURL(join(dir, 'sts.ts')).href) as OldSts
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** CPU milliseconds per verification, `CONCURRENCY` at a time. */
async function verifying (verifier: RoleVerifier, first: number): Promise<number> {
  let next = 0
  const before = process.cpuUsage()
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < VERIFICATIONS_PER_ROUND) {
      const account = String(100_000_000_000 + first + next++)
      const r = await verifier.verifyRole({ roleArn: `arn:aws:iam::${account}:role/r`, awsAccountId: account, externalId: 'bench', sessionName: `cloudoreg-${account}` })
      if (!r.ok) throw new Error(`verification failed: ${r.reason}`)
    }
  }))
  const used = process.cpuUsage(before)
  return (used.user + used.system) / 1000 / VERIFICATIONS_PER_ROUND
}

/** CPU milliseconds per GetCallerIdentity signature, each with another session's key (as in production). */
async function signing (sign: (key: Required<SigningKey>, at: Date) => Promise<unknown>, first: number): Promise<number> {
  const before = process.cpuUsage()
  for (let i = first; i < first + SIGNATURES_PER_ROUND; i++) {
    await sign({ accessKeyId: `ASIA${i}`, secretAccessKey: `secret-${i}`, sessionToken: `token-${i}` }, new Date())
  }
  const used = process.cpuUsage(before)
  return (used.user + used.system) / 1000 / SIGNATURES_PER_ROUND
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
  const old = await oldSts(OLD_REV)
  const verifiers = { old: old.createRoleVerifier(options), new: createRoleVerifier(options) }
  // Signing alone, as each version signs in its verifier: the same request and scope, no network.
  const { url, signer } = await callerIdentityTarget(new STSClient({ region: options.region, endpoint }))
  const body = 'Action=GetCallerIdentity&Version=2011-06-15'
  const headers = { 'content-type': 'application/x-www-form-urlencoded', host: url.host }
  const signers = {
    old: async (key: Required<SigningKey>, at: Date) => old.signatureV4({
      method: 'POST',
      path: url.pathname,
      body,
      region: options.region,
      service: 'sts',
      key,
      headers: { ...headers, 'x-amz-date': at.toISOString().replace(/[-:]|\.\d{3}/g, ''), 'x-amz-security-token': key.sessionToken }
    }),
    new: async (key: Required<SigningKey>, at: Date) => signer(key).sign({
      method: 'POST', protocol: url.protocol, hostname: url.hostname, path: url.pathname, query: {}, headers: { ...headers, 'content-length': String(body.length) }, body
    }, { signingDate: at })
  }

  const ms = { verify: { old: [] as number[], new: [] as number[] }, sign: { old: [] as number[], new: [] as number[] } }
  let first = 0
  // A warm-up round each (JIT, connections), then rounds alternating which goes first.
  for (const which of ['old', 'new'] as const) {
    await verifying(verifiers[which], first)
    await signing(signers[which], first)
    first += SIGNATURES_PER_ROUND
  }
  const [machine0, self0, fake0] = [machineBusy(), process.cpuUsage(), cpuSeconds(fake.pid!)]
  for (let i = 0; i < ROUNDS; i++) {
    for (const which of i % 2 === 0 ? ['old', 'new'] as const : ['new', 'old'] as const) {
      ms.verify[which].push(await verifying(verifiers[which], first))
      ms.sign[which].push(await signing(signers[which], first))
      first += SIGNATURES_PER_ROUND
    }
  }
  const self = process.cpuUsage(self0)
  const fakeCpu = cpuSeconds(fake.pid!) - fake0
  const others = machineBusy() - machine0 - (self.user + self.system) / 1e6 - fakeCpu
  for (const v of Object.values(verifiers)) v.close()
  fake.kill('SIGTERM')

  const fmt = (xs: number[]): string => xs.map(x => x.toFixed(3)).join(' / ')
  const figures = [
    [`verification (${VERIFICATIONS_PER_ROUND} a round, ${CONCURRENCY} at a time, fake STS in a child process)`, ms.verify],
    [`GetCallerIdentity signature alone (${SIGNATURES_PER_ROUND} a round)`, ms.sign]
  ] as const
  for (const [what, m] of figures) {
    console.log(`CPU per ${what}, ${ROUNDS} rounds:`)
    console.log(`  old (${OLD_REV.slice(0, 7)}, hand-written SigV4):    median ${median(m.old).toFixed(3)} ms   (rounds ${fmt(m.old)})`)
    console.log(`  new (this tree, @smithy/signature-v4): median ${median(m.new).toFixed(3)} ms   (rounds ${fmt(m.new)})`)
    console.log(`  new / old: ${(median(m.new) / median(m.old)).toFixed(2)} (medians), ${median(m.new.map((x, i) => x / m.old[i])).toFixed(2)} (median of the rounds' ratios)`)
  }
  console.log(`meanwhile: fake STS ${fakeCpu.toFixed(1)} s CPU, other processes on the machine ${others.toFixed(1)} s CPU`)
}

if (process.argv[2] === '--fake-sts') {
  const sts = await startFakeSts()
  console.log(sts.url)
} else {
  await main()
}
