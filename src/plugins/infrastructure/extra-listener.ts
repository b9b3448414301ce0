import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { Config } from '../../config.js'

export type ServerLimits = Pick<Config, 'HTTP_REQUEST_TIMEOUT_MS' | 'HTTP_IDLE_TIMEOUT_MS' | 'HTTP_MAX_CONNECTIONS'>

/**
 * The same bounds on every port (main, PUSH_PORT, METRICS_PORT): a whole request within
 * HTTP_REQUEST_TIMEOUT_MS (headers within it too), a connection silent for HTTP_IDLE_TIMEOUT_MS
 * (a stalled body, an idle keep-alive) is closed, and at most HTTP_MAX_CONNECTIONS are open.
 */
export function boundServer (server: Server, limits: ServerLimits): void {
  server.requestTimeout = limits.HTTP_REQUEST_TIMEOUT_MS
  server.headersTimeout = Math.min(limits.HTTP_REQUEST_TIMEOUT_MS, 60_000)
  server.keepAliveTimeout = Math.min(limits.HTTP_IDLE_TIMEOUT_MS, 5000)
  server.setTimeout(limits.HTTP_IDLE_TIMEOUT_MS)
  server.maxConnections = limits.HTTP_MAX_CONNECTIONS
}

/**
 * Binds a second server of the app when the app is ready, and closes it with the app.
 * On ready, not on listen: a port already taken must stop start-up, and onListen errors are only logged.
 */
export function listenWithApp (app: FastifyInstance, server: Server, port: number, host: string, what: string): () => AddressInfo | null {
  app.addHook('onReady', async () => {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => {
        server.off('error', reject)
        server.on('error', err => { app.log.error({ err }, `${what} server failed`) })
        resolve()
      })
    })
    app.log.info({ port: (server.address() as AddressInfo).port }, `${what} served on their own port`)
  })
  app.addHook('onClose', async () => {
    if (!server.listening) return
    const closed = new Promise(resolve => server.close(resolve))
    // Clients keep their connections alive between requests.
    server.closeAllConnections()
    await closed
  })
  return () => server.listening ? server.address() as AddressInfo : null
}
