// tap's `before`: each run scans only its own server logs.
import { rmSync } from 'node:fs'
rmSync(new URL('../.test-logs/', import.meta.url).pathname, { recursive: true, force: true })
