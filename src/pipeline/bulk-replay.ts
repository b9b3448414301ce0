import type { Logger } from '../log.js'
import type { Inbox, Tasks } from '../store/index.js'

/** Replays between two progress writes: a task shows its progress at least this often. */
const CHUNK = 25

export interface BulkReplay {
  inbox: Pick<Inbox, 'replay'>
  tasks: Pick<Tasks, 'progress' | 'finish'>
  taskId: number
  /** Oldest first: each copy joins the end of its source's queue, so a source's replays keep their order. */
  ids: number[]
  /** Aborted at shutdown: the task ends `failed`, saying how far it got. */
  signal: AbortSignal
  log: Logger
}

/**
 * Replays dead letters one at a time through the inbox's single replay (a copy behind its source's
 * other pending events, the original marked `replayed_as`), writing the task's progress as it goes.
 * A dead letter replayed meanwhile by someone else is skipped, never copied twice.
 */
export async function runBulkReplay (o: BulkReplay): Promise<void> {
  let done = 0
  try {
    for (let start = 0; start < o.ids.length; start += CHUNK) {
      if (o.signal.aborted) {
        await o.tasks.finish(o.taskId, 'failed', `stopped by this replica's shutdown after ${done} of ${o.ids.length}; replay again with the same filters (replayed dead letters are no longer selected)`)
        return
      }
      const copies: number[] = []
      let skipped = 0
      for (const id of o.ids.slice(start, start + CHUNK)) {
        const result = await o.inbox.replay(id)
        if (result.ok) copies.push(result.id)
        else skipped++
      }
      await o.tasks.progress(o.taskId, copies, skipped)
      done += copies.length + skipped
    }
    await o.tasks.finish(o.taskId, 'done', null)
    o.log.info({ taskId: o.taskId, matched: o.ids.length }, 'bulk replay finished')
  } catch (err) {
    o.log.error({ err, taskId: o.taskId }, 'bulk replay failed')
    await o.tasks.finish(o.taskId, 'failed', `${(err as Error).message.slice(0, 300)} (after ${done} of ${o.ids.length})`)
      .catch((e: Error) => o.log.error({ err: e, taskId: o.taskId }, 'recording the bulk replay\'s failure failed'))
  }
}
