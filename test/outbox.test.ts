import t from 'tap'
import { insertStatus } from '../src/store/outbox.js'
import { startBareApp } from './helpers/stack.js'

t.test('when several unsent rows exist for one application, only the latest is sent, in id order', async t => {
  const app = await startBareApp(t)
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
