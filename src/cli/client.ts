/** A failure the operator should read: a problem+json detail, or why the server could not be reached. Never a stack trace. */
export class CliError extends Error {
  override name = 'CliError'
  constructor (message: string, readonly exitCode = 1) {
    super(message)
  }
}

export interface Client {
  baseUrl: string
  get: <T = any>(path: string) => Promise<T>
  post: <T = any>(path: string, body: unknown) => Promise<{ status: number, body: T }>
}

const TIMEOUT_MS = 30_000

/** The problem+json an error answer carries, in one line: `404 Not Found: no event 9`. */
async function problemOf (res: Response): Promise<string> {
  const text = await res.text()
  try {
    const problem = JSON.parse(text) as { title?: unknown, detail?: unknown }
    const title = typeof problem.title === 'string' ? problem.title : res.statusText
    return typeof problem.detail === 'string' ? `${res.status} ${title}: ${problem.detail}` : `${res.status} ${title}`
  } catch {
    return `${res.status} ${res.statusText}${text === '' ? '' : `: ${text.slice(0, 200)}`}`
  }
}

/** The internal API at `baseUrl`, with INTERNAL_TOKEN as the bearer token. */
export function createClient (baseUrl: string, token: string | undefined): Client {
  const base = baseUrl.replace(/\/+$/, '')
  async function send (method: string, path: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = { accept: 'application/json' }
    if (token !== undefined && token !== '') headers.authorization = `Bearer ${token}`
    if (body !== undefined) headers['content-type'] = 'application/json'
    let res: Response
    try {
      res = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(TIMEOUT_MS) })
    } catch (err) {
      const cause = (err as { cause?: { code?: string, message?: string } }).cause
      throw new CliError(`cannot reach ${base} (${cause?.code ?? cause?.message ?? (err as Error).message}); set CLOUDOREG_URL to cloudoreg's address`)
    }
    if (res.status >= 400) {
      const hint = res.status === 401 && (token === undefined || token === '') ? ' (CLOUDOREG_TOKEN is not set: it must be the service\'s INTERNAL_TOKEN)' : ''
      throw new CliError(`${method} ${path}: ${await problemOf(res)}${hint}`)
    }
    return res
  }
  return {
    baseUrl: base,
    async get (path) {
      return await (await send('GET', path)).json()
    },
    async post (path, body) {
      const res = await send('POST', path, body)
      return { status: res.status, body: await res.json() }
    }
  }
}
