// What PostgreSQL refuses although JSON.parse and HTTP accept it. Every channel checks its input
// here before the group commit: one event that can never be stored would otherwise fail the
// statement it shares with everyone else's (push), or be re-read for ever (direct Kafka mode).

/** Deeper than any event sources-api emits; deeper input only serves to exhaust a stack somewhere. */
export const MAX_DEPTH = 64
/**
 * Delivery ids become dedupe keys, the primary key of delivery_keys: a btree row holds at most
 * about 2,700 bytes. Two of them (CloudEvents source and id) plus a prefix stay well below that.
 */
export const MAX_DELIVERY_ID_BYTES = 512

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

/** Why a text cannot be stored (text and jsonb alike), or null. */
export function textProblem (text: string): string | null {
  if (text.includes('\u0000')) return 'contains a NUL character (\\u0000)'
  if (LONE_SURROGATE.test(text)) return 'contains a lone UTF-16 surrogate'
  return null
}

/** Why a delivery id (webhook-id, CloudEvents id or source) cannot be a dedupe key, or null. */
export function deliveryIdProblem (id: string): string | null {
  if (Buffer.byteLength(id) > MAX_DELIVERY_ID_BYTES) return `is longer than ${MAX_DELIVERY_ID_BYTES} bytes`
  return textProblem(id)
}

function step (path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`
  return /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key.slice(0, 40))}]`
}

interface Frame {
  /** Where this container is: its parent and its key there (the root has neither). */
  parent: Frame | null
  key: string | number
  /** An array's elements, or an object's keys. */
  items: unknown[] | string[]
  object: Record<string, unknown> | null
  next: number
}

function frame (parent: Frame | null, key: string | number, value: object): Frame {
  return Array.isArray(value)
    ? { parent, key, items: value, object: null, next: 0 }
    : { parent, key, items: Object.keys(value), object: value as Record<string, unknown>, next: 0 }
}

/** Built only for the answer: most values are never named. */
function pathOf (what: string, f: Frame | null, key?: string | number): string {
  const keys: Array<string | number> = key === undefined ? [] : [key]
  for (let at = f; at !== null && at.parent !== null; at = at.parent) keys.unshift(at.key)
  return keys.reduce<string>(step, what)
}

/**
 * Why a parsed JSON value cannot be stored, naming the place (`what.a[3].b`), or null. Walks
 * without recursion and without spreading (a 125,000-element array once overflowed
 * `push(...values)`): its memory is one frame per level, at most MAX_DEPTH, whatever the width.
 */
export function jsonProblem (value: unknown, what: string): string | null {
  if (typeof value === 'string') {
    const problem = textProblem(value)
    return problem === null ? null : `${what} ${problem}`
  }
  if (value === null || typeof value !== 'object') return null
  const stack: Frame[] = [frame(null, '', value)]
  while (stack.length > 0) {
    const top = stack[stack.length - 1]
    if (top.next === top.items.length) {
      stack.pop()
      continue
    }
    const i = top.next++
    let key: string | number = i
    let child: unknown
    if (top.object === null) {
      child = top.items[i]
    } else {
      key = top.items[i] as string
      const keyProblem = textProblem(key)
      if (keyProblem !== null) return `a key in ${pathOf(what, top)} ${keyProblem}`
      child = top.object[key]
    }
    if (typeof child === 'string') {
      const problem = textProblem(child)
      if (problem !== null) return `${pathOf(what, top, key)} ${problem}`
    } else if (child !== null && typeof child === 'object') {
      // The root is level 0: a container may sit at level MAX_DEPTH, none deeper.
      if (stack.length > MAX_DEPTH) return `${what} is nested more than ${MAX_DEPTH} levels deep`
      stack.push(frame(top, key, child))
    }
  }
  return null
}
