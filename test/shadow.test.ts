import t from 'tap'
import { eventually, getJson, inboxStates, pushNative, startStack } from './helpers/stack.js'

const ROLE = 'arn:aws:iam::123456789012:role/redhat-cloud-meter'

for (const [env, expected] of [
  [{ STATUS_SINK: 'none' }, { statusSink: 'none', rhsmMode: 'dry-run', patches: 0 }],
  [{ RHSM_MODE: 'dry-run' }, { statusSink: 'http', rhsmMode: 'dry-run', patches: 1 }]
] as const) {
  t.test(`shadow mode ${JSON.stringify(env)}: verifies and records, changes nothing in RHSM`, async t => {
    const stack = await startStack(t, { env })
    stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: ROLE })
    t.equal((await pushNative(stack.url, 'ApplicationAuthentication.create', { application_id: 42, authentication_id: 311 })).status, 202)
    await eventually(async () => (await inboxStates(stack))[0]?.state === 'done' ? true : undefined)
    t.match((await getJson(`${stack.url}/api/cloudoreg/v1/sources/7`)).body, { state: 'registered', aws_account_id: '123456789012' })
    t.equal(stack.sts.calls.length, 2, 'the role is verified')
    t.equal(stack.rhsm.requests.length, 0, 'RHSM is not called')
    if (expected.patches > 0) await eventually(() => stack.sources.patches.length >= expected.patches ? true : undefined, 30_000, 'the PATCH')
    await new Promise(resolve => setTimeout(resolve, 500))
    t.equal(stack.sources.patches.length, expected.patches)
    t.match(await (await fetch(`${stack.url}/readyz`)).json(), { statusSink: expected.statusSink, rhsmMode: expected.rhsmMode })
    t.ok(stack.logs.some(l => l.includes('pipeline started in shadow mode')), 'the start-up log says so')
    t.ok(stack.logs.some(l => l.includes('would map the AWS account in RHSM')), 'and what would have changed')
  })
}
