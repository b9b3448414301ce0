import t from 'tap'
import { insertStatus, type StatusMessage } from '../src/store/outbox.js'
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
  const batches: StatusMessage[][] = []
  const sent = await outbox.relay(100, async batch => { batches.push(batch) })
  t.equal(sent, 2)
  const [batch] = batches
  t.same(batch.map(m => [m.applicationId, m.status]), [['43', 'available'], ['42', 'available']])
  t.equal(batch[0].accountNumber, null)
  t.equal(await outbox.relay(100, async batch => { batches.push(batch) }), 0, 'nothing left: the older row for 42 is superseded, never sent')
  t.equal(batches.length, 1)
  const { rows } = await pool.query('select application_id, superseded, sent_at is not null as sent from status_outbox order by id')
  t.same(rows, [
    { application_id: '42', superseded: true, sent: false },
    { application_id: '43', superseded: false, sent: true },
    { application_id: '42', superseded: false, sent: true }
  ])
})

t.test('relays racing on one database send each row once, and each application\'s rows in order', async t => {
  const app = await startBareApp(t)
  const { pool, outbox } = app.store
  const apps = 40
  const rounds = 6
  const sent: StatusMessage[] = []
  const inFlight = new Set<string>()
  let overlaps = 0
  let writing = true
  async function relayLoop (): Promise<void> {
    while (true) {
      const n = await outbox.relay(7, async batch => {
        for (const m of batch) {
          if (inFlight.has(m.applicationId)) overlaps++
          inFlight.add(m.applicationId)
        }
        await new Promise(resolve => setTimeout(resolve, Math.random() * 15))
        for (const m of batch) inFlight.delete(m.applicationId)
        sent.push(...batch)
      })
      if (n === 0 && !writing) return
      if (n === 0) await new Promise(resolve => setTimeout(resolve, 5))
    }
  }
  const relays = [relayLoop(), relayLoop(), relayLoop(), relayLoop()]
  // The statuses alternate, so the last one per application is known: round rounds-1.
  for (let round = 0; round < rounds; round++) {
    const client = await pool.connect()
    try {
      for (let a = 0; a < apps; a++) {
        await insertStatus(client, { applicationId: String(a), status: round % 2 === 0 ? 'available' : 'unavailable', error: `round ${round}` }, '7654321', null)
      }
    } finally {
      client.release()
    }
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  writing = false
  await Promise.all(relays)

  const ids = sent.map(m => m.id)
  t.equal(new Set(ids).size, ids.length, 'no row was sent twice')
  t.equal(overlaps, 0, 'no two relays sent messages of one application at the same time')
  const byApp = new Map<string, number[]>()
  for (const m of sent) byApp.set(m.applicationId, [...(byApp.get(m.applicationId) ?? []), m.id])
  const outOfOrder = [...byApp.values()].filter(list => list.some((id, i) => i > 0 && id < list[i - 1]))
  t.same(outOfOrder, [], 'each application\'s rows were sent in id order')
  const last = new Map(sent.map(m => [m.applicationId, m.error]))
  t.equal(last.size, apps)
  t.ok([...last.values()].every(e => e === `round ${rounds - 1}`), 'the latest status of every application was the last sent')
  const { rows } = await pool.query<{ n: number }>('select count(*)::int as n from status_outbox where sent_at is null and not superseded')
  t.equal(rows[0].n, 0, 'nothing left unsent')
})

t.test('a send that fails leaves its rows unsent, and the next relay sends them', async t => {
  const app = await startBareApp(t)
  const { pool, outbox } = app.store
  const client = await pool.connect()
  try {
    await insertStatus(client, { applicationId: '7', status: 'available', error: '' }, '7654321', null)
  } finally {
    client.release()
  }
  await t.rejects(outbox.relay(10, async () => { throw new Error('broker down') }), { message: 'broker down' })
  const again: StatusMessage[] = []
  t.equal(await outbox.relay(10, async batch => { again.push(...batch) }), 1)
  t.same(again.map(m => m.applicationId), ['7'])
})
