import { setTimeout as sleep } from 'node:timers/promises'
import { CliError, type Client } from './client.js'
import { progressBar, table, type BarStream, type Output } from './output.js'

export interface Context {
  client: Client
  out: Output
  /** Between two polls of a running task or reconciliation. */
  pollMs: number
  /** Messages for the operator that are not the command's output (they go to stderr). */
  note: (text: string) => void
  /** Where progress bars are drawn, when it is a terminal (stderr). */
  bars: BarStream
}

const short = (text: unknown, max = 60): unknown => typeof text === 'string' && text.length > max ? `${text.slice(0, max - 1)}…` : text

export async function status (c: Context, sourceId: string): Promise<number> {
  const s = await c.client.get(`/internal/v1/sources/${encodeURIComponent(sourceId)}`)
  c.out.print(s, () => [
    table([
      { field: 'source', value: s.source_id },
      { field: 'org', value: s.org_id },
      { field: 'application', value: s.application_id },
      { field: 'state', value: s.state },
      { field: 'mapped in RHSM', value: s.mapped },
      { field: 'availability', value: s.availability_status },
      { field: 'error', value: s.error === null ? null : `${s.error.code}: ${s.error.message}` },
      { field: 'role', value: s.role_arn },
      { field: 'attempts', value: s.attempts },
      { field: 'verified at', value: s.verified_at },
      { field: 'updated at', value: s.updated_at },
      { field: 'waiting', value: s.waiting === null ? null : s.waiting.reason }
    ])
  ])
  return 0
}

export async function history (c: Context, sourceId: string): Promise<number> {
  const h = await c.client.get(`/internal/v1/sources/${encodeURIComponent(sourceId)}/history?attempts=true`)
  c.out.print(h, () => {
    const rows: Array<Record<string, unknown>> = []
    for (const e of h.timeline) {
      if (e.kind === 'status') {
        rows.push({ at: e.at, what: `status ${e.status}`, event: null, state: e.sent_at !== null ? 'sent' : e.superseded ? 'superseded' : 'unsent', detail: short(e.error) })
        continue
      }
      rows.push({ at: e.at, what: e.description, event: e.event_id, state: e.state, detail: short(e.outcome ?? e.last_error) })
      for (const a of e.attempt_history ?? []) {
        const met = [a.upstream, a.step, a.error_code, a.outcome_code].filter(v => v !== null).join(' ')
        rows.push({ at: a.started_at, what: `  attempt ${a.attempt} (${a.duration_ms} ms, ${a.replica})`, event: e.event_id, state: a.result, detail: short(met === '' ? a.error : `${met}${a.error === null ? '' : `: ${a.error}`}`) })
      }
    }
    return [`source ${h.source_id}, application ${h.application_id ?? '-'}`, table(rows), ...h.audit.map((a: any) => `audit ${a.at} ${a.action}: ${a.detail}`)]
  })
  return 0
}

export interface Filters { error_code?: string, upstream?: string, event_type?: string, org_id?: string, since?: string, until?: string }

function query (params: Record<string, string | number | boolean | undefined>): string {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, String(v))
  return q.toString()
}

export async function listDeadLetters (c: Context, filters: Filters, page: { limit?: number, offset?: number, includeReplayed: boolean }): Promise<number> {
  const res = await c.client.get(`/internal/v1/dead-letters?${query({ ...filters, limit: page.limit, offset: page.offset, include_replayed: page.includeReplayed || undefined })}`)
  c.out.print(res, () => [
    table(res.data.map((d: any) => ({
      id: d.id,
      type: d.event_type,
      org: d.org_id,
      source: d.source_id,
      attempts: d.attempts,
      upstream: d.last_attempt?.upstream,
      code: d.last_attempt?.error_code,
      'gave up at': d.finished_at,
      'replayed as': d.replayed_as,
      'last error': short(d.last_error, 50)
    }))),
    `${res.data.length} of ${res.meta.count} dead letters`
  ])
  return 0
}

export async function replayDeadLetters (c: Context, filters: Filters, o: { limit?: number, dryRun: boolean, wait: boolean }): Promise<number> {
  const { body } = await c.client.post('/internal/v1/dead-letters/replay', { ...filters, limit: o.limit, dry_run: o.dryRun })
  if (o.dryRun) {
    c.out.print(body, () => [`dry run: ${body.matched} dead letters would be replayed${body.matched > 0 ? ':' : ''}`, ...(body.matched > 0 ? [body.ids.join(' ')] : [])])
    return 0
  }
  if (!o.wait) {
    c.out.print(body, () => `replaying ${body.matched} dead letters: task ${body.id} (cloudoreg tasks watch ${body.id})`)
    return 0
  }
  c.note(`replaying ${body.matched} dead letters: task ${body.id}`)
  return await watchTask(c, String(body.id))
}

export async function watchTask (c: Context, id: string): Promise<number> {
  const bar = progressBar(`task ${id}`, ['replayed', 'done', 'failed', 'pending'], !c.out.json, c.bars)
  let task: any
  try {
    for (;;) {
      task = await c.client.get(`/internal/v1/tasks/${encodeURIComponent(id)}`)
      bar.update(task.done + task.failed + task.skipped, task.matched, { replayed: task.replayed, done: task.done, failed: task.failed, pending: task.pending })
      if (task.state !== 'running') break
      await sleep(c.pollMs)
    }
  } finally {
    bar.stop()
  }
  c.out.print(task, () => [
    `task ${task.id} ${task.state}: ${task.matched} matched, ${task.replayed} replayed, ${task.done} done, ${task.failed} failed again, ${task.skipped} skipped`,
    ...(task.error === null ? [] : [`error: ${task.error}`])
  ])
  return task.state === 'done' && task.failed === 0 ? 0 : 1
}

/** Written against the reconciliation's contract: POST /internal/v1/reconcile → a run; GET /internal/v1/reconcile/{id} → its progress and report. */
export async function reconcile (c: Context, apply: boolean): Promise<number> {
  const { body: started } = await c.client.post('/internal/v1/reconcile', { dry_run: !apply })
  c.note(`${apply ? 'reconciling (repairs go through each source\'s queue)' : 'dry run: nothing is changed'}: run ${started.id}`)
  const bar = progressBar(`reconcile ${started.id}`, ['drift'], !c.out.json, c.bars)
  let run: any
  try {
    for (;;) {
      run = await c.client.get(`/internal/v1/reconcile/${encodeURIComponent(String(started.id))}`)
      const drift = Object.values(run.counts ?? {}).reduce((a: number, b) => a + Number(b), 0)
      bar.update(run.checked ?? 0, run.total ?? 0, { drift })
      if (run.state !== 'running') break
      await sleep(c.pollMs)
    }
  } finally {
    bar.stop()
  }
  c.out.print(run, () => [
    `reconciliation ${run.id} ${run.state}${run.dry_run === true ? ' (dry run)' : ''}: ${run.checked ?? 0} of ${run.total ?? 0} checked`,
    table(Object.entries(run.counts ?? {}).map(([drift, n]) => ({ drift, count: n }))),
    ...((run.drift ?? []).length === 0
      ? []
      : [table(run.drift.map((d: any) => ({ class: d.class, source: d.source_id, application: d.application_id, org: d.org_id, detail: short(d.detail, 50), repair: short(d.repair, 40) })))]),
    ...(run.error === null || run.error === undefined ? [] : [`error: ${run.error}`])
  ])
  if (run.state === 'failed') throw new CliError(`reconciliation ${run.id} failed${run.error ? `: ${run.error}` : ''}`)
  return 0
}
