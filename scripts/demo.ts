import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import closeWithGrace from 'close-with-grace'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { DOCS_PREFIX } from '../src/plugins/infrastructure/openapi.js'
import { startFakeRhsm } from '../test/helpers/fake-rhsm.js'
import { startFakeSources } from '../test/helpers/fake-sources.js'
import { startFakeSts } from '../test/helpers/fake-sts.js'
import { upstreamEnv } from '../test/helpers/process.js'
import { ACCOUNT, eventually, freePort, identities, ORG, PSK } from '../test/helpers/stack.js'

// npm run demo: cloudoreg with the test suite's fakes of sources-api, STS and RHSM in this process,
// three example sources pushed as a bridge would, and where to look. Nothing to install, no AWS.
// The data lives in a temporary directory removed on exit, so `npm start`'s ./data is left alone.

interface Example { sourceId: string, applicationId: string, authenticationId: string, arn: string, what: string }

const EXAMPLES: Example[] = [
  { sourceId: '7', applicationId: '42', authenticationId: '311', arn: 'arn:aws:iam::123456789012:role/redhat-cloud-meter', what: 'a role that trusts Red Hat' },
  { sourceId: '8', applicationId: '43', authenticationId: '312', arn: 'arn:aws:iam::12345:role/typo', what: 'an ARN that is not valid' },
  { sourceId: '9', applicationId: '44', authenticationId: '313', arn: 'arn:aws:iam::210987654321:role/no-trust', what: 'a role whose trust policy denies Red Hat' }
]

const [sources, sts, rhsm, pgPort] = await Promise.all([startFakeSources({ psk: PSK }), startFakeSts(), startFakeRhsm(), freePort()])
for (const e of EXAMPLES) sources.addSource({ ...e, externalId: `demo-external-id-${e.sourceId}` })
sts.deny.add(EXAMPLES[2].arn)

const dataDir = mkdtempSync(join(tmpdir(), 'cloudoreg-demo-'))
const config = loadConfig({
  LOG_LEVEL: 'info',
  ...process.env,
  NODE_ENV: 'development',
  DATA_DIR: dataDir,
  EMBEDDED_PG_PORT: String(pgPort),
  ...upstreamEnv({ sources, sts, rhsm }),
  STATUS_SINK: 'http',
  PUSH_AUTH: 'none'
})
const app = await buildApp({ config })
closeWithGrace({ delay: 30_000 }, async () => {
  await app.close()
  await Promise.all([sources.close(), sts.close(), rhsm.close()])
  rmSync(dataDir, { recursive: true, force: true })
})
await app.listen({ port: config.PORT, host: config.HOST })
const { port } = app.server.address() as { port: number }
const url = `http://localhost:${port}`
const identity = identities.base64.user_7654321 as string

for (const e of EXAMPLES) {
  const res = await fetch(`${url}/internal/v1/events`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      event_type: 'ApplicationAuthentication.create',
      'x-rh-sources-org-id': ORG,
      'x-rh-sources-account-number': ACCOUNT
    },
    body: JSON.stringify({ application_id: Number(e.applicationId), authentication_id: Number(e.authenticationId), tenant: ACCOUNT })
  })
  if (res.status !== 202) throw new Error(`pushing the event of source ${e.sourceId} answered ${res.status}: ${await res.text()}`)
}

// Decided once cloudoreg reported it to (fake) sources-api; then read it as a customer would.
await eventually(() => EXAMPLES.every(e => sources.applications.get(e.applicationId)!.availability_status !== 'in_progress') ? true : undefined,
  60_000, 'the three sources to be decided')
const outcomes = await Promise.all(EXAMPLES.map(async e => {
  const res = await fetch(`${url}/api/cloudoreg/v1/sources/${e.sourceId}`, { headers: { 'x-rh-identity': identity } })
  return { e, body: await res.json() as { state: string, error: { code: string, message: string } | null } }
}))

const lines = [
  '',
  'cloudoreg demo: three sources of org 7654321 were pushed as sources-api events, with fakes of sources-api, STS and RHSM.',
  ...outcomes.map(({ e, body }) => `  source ${e.sourceId} (${e.what}): ${body.state}${body.error ? ` ${body.error.code}: ${body.error.message}` : ''}`),
  '',
  'Where to look:',
  `  Swagger UI (Authorize with the identity below): ${url}${DOCS_PREFIX}`,
  `  export ID=${identity}`,
  ...EXAMPLES.map(e => `  curl -s ${url}/api/cloudoreg/v1/sources/${e.sourceId} -H "x-rh-identity: $ID"`),
  `  curl -s ${url}/api/cloudoreg/v1/sources/${EXAMPLES[2].sourceId}/history -H "x-rh-identity: $ID"   # the timeline of one source`,
  `  curl -s ${url}/metrics`,
  '  Push more with the README\'s curl (port ' + port + '); Ctrl-C stops the demo and removes its data.',
  ''
]
process.stdout.write(lines.join('\n') + '\n')
