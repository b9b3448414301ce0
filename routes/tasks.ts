import { hostname } from 'node:os'
import { Type, type Static } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { DeadLetterFilters, filterOf, filterParams } from '../src/http/dead-letter-filter.js'
import { runBulkReplay } from '../src/pipeline/bulk-replay.js'
import { sendProblem } from '../src/plugins/infrastructure/problem.js'
import { Nullable, ProblemRef } from '../src/schemas.js'
import type { TaskRecord } from '../src/store/index.js'

/** A task whose replica has written nothing for this long is reported failed: that replica stopped. */
const SILENT_MS = 120_000
const MAX_REPLAY = 10_000
const REPLAY_KIND = 'dead-letter-replay'

const ReplayRequest = Type.Object({
  ...DeadLetterFilters,
  limit: Type.Integer({ minimum: 1, maximum: MAX_REPLAY, default: 1000, description: 'At most this many, oldest first' }),
  dry_run: Type.Boolean({ default: true, description: 'Only say which dead letters a real run would replay (the default)' })
}, { additionalProperties: false })

const TaskState = Type.Union([Type.Literal('running'), Type.Literal('done'), Type.Literal('failed')])

const Task = Type.Object({
  id: Type.Integer({ examples: [1] }),
  kind: Type.String({ examples: [REPLAY_KIND] }),
  state: Type.Union([TaskState], { description: 'running: replaying, or replays still pending · done: every replay ended · failed: stopped (see error)' }),
  params: Type.Record(Type.String(), Type.Unknown(), { description: 'The filters it was started with' }),
  matched: Type.Integer({ description: 'Dead letters the filters selected' }),
  replayed: Type.Integer({ description: 'Copied into the inbox so far, each behind its source\'s pending events' }),
  skipped: Type.Integer({ description: 'Selected but replayed meanwhile by someone else (not copied twice)' }),
  done: Type.Integer({ description: 'Replays that ended done (or ignored)' }),
  failed: Type.Integer({ description: 'Replays that gave up again (dead letters once more)' }),
  pending: Type.Integer({ description: 'Replays not ended yet' }),
  error: Nullable(Type.String()),
  owner: Nullable(Type.String({ description: 'The replica running it' })),
  created_at: Type.String({ format: 'date-time' }),
  finished_at: Nullable(Type.String({ format: 'date-time', description: 'When its replica stopped copying (the replays may still run)' }))
})

function taskBody (t: TaskRecord): Static<typeof Task> {
  let state = t.state
  let error = t.error
  if (state === 'running' && t.silentMs > SILENT_MS) {
    state = 'failed'
    error = `the replica running it (${t.owner ?? 'unknown'}) stopped after ${t.replayed + t.skipped} of ${t.matched}; ` +
      'replay again with the same filters (replayed dead letters are no longer selected)'
  } else if (state === 'done' && t.pending > 0) state = 'running'
  return {
    id: t.id,
    kind: t.kind,
    state,
    params: t.params,
    matched: t.matched,
    replayed: t.replayed,
    skipped: t.skipped,
    done: t.done,
    failed: t.failed,
    pending: t.pending,
    error,
    owner: t.owner,
    created_at: t.createdAt.toISOString(),
    finished_at: t.finishedAt?.toISOString() ?? null
  }
}

const security: Array<Record<string, string[]>> = [{ bearer: [] }]

/** Bulk work of operators: a filtered replay of dead letters, run in the background, its progress readable from any replica. */
export default async function tasks (fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  app.addHook('onRequest', app.auth.internal)
  const stopping = new AbortController()
  const running = new Set<Promise<void>>()
  // Before the store closes: a task stops between two chunks and says how far it got.
  app.addHook('preClose', async () => {
    stopping.abort()
    await Promise.all(running)
  })

  app.post('/internal/v1/dead-letters/replay', {
    schema: {
      tags: ['operations'],
      summary: 'Replay the dead letters a filter selects (a dry run by default)',
      description: 'The filters select dead letters not replayed yet, oldest first, at most `limit`: by what the attempt that gave up ' +
        'met (`upstream`, `error_code`), by `event_type`, `org_id`, and by when they gave up (`since` included, `until` excluded). ' +
        '`dry_run: true` (the default) answers the ids a real run would replay. A real run answers `202` with a task: ' +
        '`GET /internal/v1/tasks/{id}` shows its progress. Each dead letter is replayed as with `POST /internal/v1/events/{id}/replay`: ' +
        'a copy behind its source\'s other pending events.',
      security,
      body: ReplayRequest,
      response: {
        200: Type.Object({
          dry_run: Type.Literal(true),
          matched: Type.Integer(),
          ids: Type.Array(Type.Integer(), { description: 'The dead letters a real run would replay, oldest first' })
        }, { description: 'Dry run: nothing replayed' }),
        202: Type.Object({
          id: Type.Integer({ description: 'The task' }),
          kind: Type.String({ examples: [REPLAY_KIND] }),
          dry_run: Type.Literal(false),
          state: TaskState,
          matched: Type.Integer(),
          ids: Type.Array(Type.Integer(), { description: 'The dead letters being replayed, oldest first' })
        }, { description: 'Started; the header Location names the task' }),
        400: ProblemRef,
        401: ProblemRef
      }
    }
  }, async (request, reply) => {
    const { limit, dry_run: dryRun } = request.body
    const ids = await app.store.deadLetters.select(filterOf(request.body), limit)
    if (dryRun) return { dry_run: true as const, matched: ids.length, ids }
    const params = { ...filterParams(request.body), limit }
    const owner = `${hostname()}/${process.pid}`
    const id = await app.store.tasks.create(REPLAY_KIND, params, ids, owner)
    request.log.info({ taskId: id, matched: ids.length, params }, 'bulk replay started')
    const task = runBulkReplay({ inbox: app.store.inbox, tasks: app.store.tasks, taskId: id, ids, signal: stopping.signal, log: app.log })
      .finally(() => running.delete(task))
    running.add(task)
    return reply.code(202).header('location', `/internal/v1/tasks/${id}`)
      .send({ id, kind: REPLAY_KIND, dry_run: false as const, state: 'running' as const, matched: ids.length, ids })
  })

  app.get('/internal/v1/tasks/:id', {
    schema: {
      tags: ['operations'],
      summary: 'Progress of an operator\'s background task (a bulk replay), from any replica',
      security,
      params: Type.Object({ id: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }) }),
      response: { 200: Task, 400: ProblemRef, 401: ProblemRef, 404: ProblemRef }
    }
  }, async (request, reply) => {
    const task = await app.store.tasks.get(request.params.id)
    if (task === null) return sendProblem(reply, 404, `no task ${request.params.id} (never started, or pruned after RETENTION_DAYS)`)
    return taskBody(task)
  })
}
