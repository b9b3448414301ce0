import t from 'tap'
import { outage } from './helpers/outage.js'

// RHSM answers 503 to everything, until 4 s after all 500 sources wait for it (about 10 s open in all,
// 100 times an event's whole retry budget), while 500 sources are created, two events each: nothing gives up, no attempt is spent while
// the breaker is open, only probes reach RHSM, and every source ends registered, in order.
// OUTAGE_SOURCES scales it.
const SOURCES = Number(process.env.OUTAGE_SOURCES ?? 500)

t.test(`RHSM down while ${SOURCES} sources are created`, async t => {
  await outage(t, 'rhsm', SOURCES, 2, 4000)
})
