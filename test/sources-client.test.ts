import t from 'tap'
import { Agent } from 'undici'
import { createSourcesClient } from '../src/sources/client.js'
import { createRhsmClient } from '../src/rhsm/client.js'
import { startFakeRhsm } from './helpers/fake-rhsm.js'
import { startFakeSources } from './helpers/fake-sources.js'
import { ACCOUNT, ORG, PSK } from './helpers/stack.js'

const tenant = { orgId: ORG, accountNumber: ACCOUNT }

t.test('the first sources of a burst share one application-type lookup; a failed lookup is asked again', async t => {
  const api = await startFakeSources({ psk: PSK })
  const dispatcher = new Agent()
  t.teardown(async () => {
    await dispatcher.close()
    await api.close()
  })
  const client = createSourcesClient({ baseUrl: api.url, psk: PSK, dispatcher, timeoutMs: 2000, attempts: 1 })
  const lookups = (): number => api.requests.filter(r => r.path.endsWith('/application_types')).length

  api.failNext(1, 503)
  const failed = await Promise.allSettled(Array.from({ length: 8 }, async () => await client.cloudMeterTypeId(tenant)))
  t.ok(failed.every(r => r.status === 'rejected'), 'the burst shares the failure')
  t.equal(lookups(), 1, 'eight callers, one request')

  const ids = await Promise.all(Array.from({ length: 8 }, async () => await client.cloudMeterTypeId(tenant)))
  t.equal(new Set(ids).size, 1)
  t.not(ids[0], '')
  t.equal(lookups(), 2, 'after a failure the next burst asks once more')
  await client.cloudMeterTypeId(tenant)
  t.equal(lookups(), 2, 'once answered, never asked again')
})

t.test('reconciliation lists: page by page, each page a request, only the tenant\'s own; RHSM\'s enabled accounts likewise', async t => {
  const [api, rhsm] = await Promise.all([startFakeSources({ psk: PSK }), startFakeRhsm()])
  const dispatcher = new Agent()
  t.teardown(async () => {
    await dispatcher.close()
    await Promise.all([api.close(), rhsm.close()])
  })
  const client = createSourcesClient({ baseUrl: api.url, psk: PSK, dispatcher, timeoutMs: 2000, attempts: 1 })
  for (let i = 0; i < 25; i++) {
    api.addSource({ sourceId: String(i), applicationId: String(100 + i), authenticationId: String(200 + i), arn: `arn:aws:iam::${String(i).padStart(12, '0')}:role/r`, orgId: i < 21 ? ORG : '1111111' })
    rhsm.mappings.set(String(i), { awsAccountId: String(i).padStart(12, '0'), orgId: i < 20 ? ORG : '1111111' })
  }
  const pagesOf = async <T>(pages: AsyncGenerator<T[]>): Promise<number[]> => {
    const sizes: number[] = []
    for await (const page of pages) sizes.push(page.length)
    return sizes
  }
  t.same(await pagesOf(client.allSources(10)), [10, 10, 5], 'every tenant\'s sources, three pages')
  const [first] = await client.allSources(10).next().then(r => r.value!)
  t.same(first, { sourceId: '0', orgId: ORG, accountNumber: null })
  t.same(await pagesOf(client.cloudMeterApplications(tenant, 10)), [10, 10, 1], 'the org\'s 21 applications')
  t.same(await pagesOf(client.applicationAuthentications(tenant, 7)), [7, 7, 7], 'a full last page ends the list by its count')
  const auths: any[] = []
  for await (const page of client.arnAuthentications(tenant, 100)) auths.push(...page)
  t.equal(auths.length, 21)
  t.same(auths[0], { id: '200', username: 'arn:aws:iam::000000000000:role/r', resourceType: 'Application', resourceId: '100' }, 'the list shows no password')

  const rhsmClient = createRhsmClient({ baseUrl: rhsm.url, dispatcher, timeoutMs: 2000, attempts: 1 })
  t.same(await pagesOf(rhsmClient.enabledAwsAccounts(ORG, 10)), [10, 10, 0], 'RHSM counts a page\'s own items: a full page asks for the next')
  const [account] = await rhsmClient.enabledAwsAccounts('1111111', 10).next().then(r => r.value!)
  t.same(account, { id: '000000000020', sourceId: '20', verified: true })
  rhsm.failNext(1, 503)
  await t.rejects(pagesOf(rhsmClient.enabledAwsAccounts(ORG, 10)), /rhsm: answered 503/)
})
