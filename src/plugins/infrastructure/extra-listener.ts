import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'

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
