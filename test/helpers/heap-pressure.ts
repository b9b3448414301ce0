// Run as a child process with a small --max-old-space-size: fills the heap past the shedding
// threshold, then pushes once, and prints what the push was answered as JSON on stdout.
import { getHeapStatistics } from 'node:v8'
import { heapShedBytes } from '../../src/plugins/infrastructure/load-shedding.js'
import { startBareApp } from './stack.js'

const teardowns: Array<() => unknown> = []
const app = await startBareApp({ teardown: fn => { teardowns.push(fn) } }, { LOG_LEVEL: 'silent' })
const threshold = heapShedBytes()
const keep: number[][] = []
// 2 MB a piece, until 8 MB past the threshold: still well short of the old space's own limit.
while (process.memoryUsage().heapUsed < threshold + 8 * 1024 * 1024) keep.push(new Array(250_000).fill(Math.random()))
// Load shedding samples the heap once a second.
await new Promise(resolve => setTimeout(resolve, 2500))
const res = await app.inject({
  method: 'POST',
  url: '/internal/v1/events',
  headers: { 'content-type': 'application/json', event_type: 'ApplicationAuthentication.create', 'x-rh-sources-org-id': '7654321' },
  payload: '{"application_id":1,"authentication_id":2}'
})
const heapUsed = process.memoryUsage().heapUsed
keep.length = 0
process.stdout.write(JSON.stringify({ status: res.statusCode, body: res.body, heapUsed, threshold, limit: getHeapStatistics().heap_size_limit }) + '\n')
for (const fn of teardowns) await fn()
