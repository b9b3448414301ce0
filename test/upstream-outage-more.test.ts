import t from 'tap'
import { outage } from './helpers/outage.js'

// The proof of test/upstream-outage.test.ts, smaller, for the two other upstreams: sources-api (read
// by every event before anything else, and the status PATCHes) and STS.
t.test('sources-api down while 100 sources are created', async t => {
  await outage(t, 'sources', 100, 2, 3000)
})

t.test('STS down while 100 sources are created', async t => {
  await outage(t, 'sts', 100, 2, 3000)
})
