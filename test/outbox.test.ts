import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { insertStatus } from '../src/store/outbox.js'
import { freePort } from './helpers/stack.js'

t.test('when several unsent rows exist for one application, only the latest is sent, in id order', async t => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cloudoreg-outbox-'))
  const app = await buildApp({ config: loadConfig({ DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(await freePort()), LOG_LEVEL: 'silent' }) })
  t.teardown(async () => {
    await app.close()
    rmSync(dataDir, { recursive: true, force: true })
  })
  await app.ready()
  const { pool, outbox } = app.store
  const client = await pool.connect()
  try {
    await insertStatus(client, { applicationId: '42', status: 'unavailable', error: 'first' }, '7654321', '1234567')
    await insertStatus(client, { applicationId: '43', status: 'available', error: '' }, '7654321', null)
    await insertStatus(client, { applicationId: '42', status: 'available', error: '' }, '7654321', '1234567')
  } finally {
    client.release()
  }
  const batch = await outbox.next(100)
  t.same(batch.map(m => [m.applicationId, m.status]), [['43', 'available'], ['42', 'available']])
  t.equal(batch[0].accountNumber, null)
  await outbox.markSent(batch.map(m => m.id))
  t.same(await outbox.next(100), [], 'nothing left: the older row for 42 is superseded, never sent')
  const { rows } = await pool.query('select application_id, superseded, sent_at is not null as sent from status_outbox order by id')
  t.same(rows, [
    { application_id: '42', superseded: true, sent: false },
    { application_id: '43', superseded: false, sent: true },
    { application_id: '42', superseded: false, sent: true }
  ])
})
