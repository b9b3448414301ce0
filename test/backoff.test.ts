import t, { type Test } from 'tap'
import { backoffDelay, type Backoff } from '../src/backoff.js'
import { KAFKA_RETRY, kafkajsRetry } from '../src/kafka/client.js'

const EVENT: Backoff = { firstMs: 1000, maxMs: 60_000, jitter: 0.5 }

/** The wait with Math.random() pinned to `r`: 0 takes nothing off, 1 the whole jitter share. */
function pinned (t: Test, r: number, b: Backoff, retry: number): number {
  const random = t.capture(Math, 'random', () => r)
  try {
    return backoffDelay(b, retry)
  } finally {
    random.restore()
  }
}

t.test('the ceiling doubles from firstMs with each retry, then stays at maxMs', async t => {
  const ceilings = [1, 2, 3, 4, 5, 6, 7, 8].map(retry => pinned(t, 0, EVENT, retry))
  t.same(ceilings, [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000])
  t.equal(pinned(t, 0, EVENT, 100_000), 60_000, 'a very late retry still waits maxMs, a finite number')
  t.equal(pinned(t, 0, EVENT, 0), 1000, 'retry 0 counts as the first')
  t.equal(pinned(t, 0, EVENT, -3), 1000, 'and so does a negative one')
})

t.test('the jitter takes at most its share off the ceiling', async t => {
  t.equal(pinned(t, 0.999999, EVENT, 1), 500, 'half of 1000 off at most, for jitter 0.5')
  t.equal(pinned(t, 0.5, EVENT, 3), 3000, 'a quarter of 4000 off for a draw in the middle')
  t.equal(pinned(t, 0.999999, { firstMs: 150, maxMs: 1000, jitter: 1 / 3 }, 1), 100)
  t.equal(pinned(t, 0.999999, { ...EVENT, jitter: 0 }, 2), 2000, 'no jitter: exactly the ceiling')
  t.equal(pinned(t, 0.999999, { ...EVENT, jitter: 1 }, 2), 0, 'full jitter: down to nothing')
})

t.test('every wait is a whole number of milliseconds within its range, spread over it', async t => {
  const waits = Array.from({ length: 2000 }, () => backoffDelay(EVENT, 3))
  t.ok(waits.every(w => Number.isInteger(w) && w >= 2000 && w <= 4000), 'within [2000, 4000]')
  t.ok(Math.min(...waits) < 2200 && Math.max(...waits) > 3800, `spread over the range: ${Math.min(...waits)} to ${Math.max(...waits)}`)
})

t.test('parameters out of range stay bounded', async t => {
  t.equal(pinned(t, 0.999999, { ...EVENT, jitter: 3 }, 1), 0, 'a jitter over 1 never makes a wait negative')
  t.equal(pinned(t, 0.999999, { ...EVENT, jitter: -1 }, 1), 1000, 'a negative jitter never makes a wait longer than the ceiling')
  t.equal(pinned(t, 0, { firstMs: 0, maxMs: 1000, jitter: 0.5 }, 5000), 0, 'firstMs 0: no wait, not NaN')
})

t.test('kafkajs\'s retry settings draw their first wait over the same range as backoffDelay', async t => {
  t.match(KAFKA_RETRY, { initialRetryTime: 300, maxRetryTime: 30_000, multiplier: 2, retries: 5 })
  t.ok(Math.abs(KAFKA_RETRY.factor - 0.2) < 1e-9, 'factor 0.2')
  for (const b of [EVENT, { firstMs: 360, maxMs: 30_000, jitter: 1 / 3 }, { firstMs: 800, maxMs: 5000, jitter: 0.1 }]) {
    const k = kafkajsRetry(b, 3)
    // kafkajs's first wait: initialRetryTime ± factor.
    t.ok(Math.abs(k.initialRetryTime * (1 + k.factor) - b.firstMs) <= 1, `longest first wait ${b.firstMs}`)
    t.ok(Math.abs(k.initialRetryTime * (1 - k.factor) - b.firstMs * (1 - b.jitter)) <= 1, `shortest first wait ${b.firstMs * (1 - b.jitter)}`)
    t.equal(k.maxRetryTime, b.maxMs)
    t.equal(k.retries, 3)
  }
})
