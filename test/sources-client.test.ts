import t from 'tap'
import { Agent } from 'undici'
import { createSourcesClient } from '../src/sources/client.js'
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
