// The ingest ceiling: a bare Fastify route that answers 202 to the same kind of body.
import Fastify from 'fastify'

const app = Fastify({ bodyLimit: 4 * 1024 * 1024 })
app.removeAllContentTypeParsers()
app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => { done(null, body) })
app.post('/internal/v1/events', async (_req, reply) => reply.code(202).send())
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })
