// The ingest ceilings: a bare Fastify route that answers 202 to the same kind of body; with
// DATABASE_URL, the same route first commits the body as one row (one pg connection, no pool), the
// least a durable HTTP ingest can do per request.
import Fastify from 'fastify'
import pg from 'pg'

const app = Fastify({ bodyLimit: 4 * 1024 * 1024 })
app.removeAllContentTypeParsers()
app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => { done(null, body) })
if (process.env.DATABASE_URL) {
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL })
  await client.connect()
  await client.query('create table if not exists bench_bare_commit (id bigserial primary key, body jsonb not null)')
  app.post('/internal/v1/events', async (req, reply) => {
    await client.query({ name: 'bare-commit', text: 'insert into bench_bare_commit (body) values ($1)', values: [req.body.toString('utf8')] })
    return reply.code(202).send()
  })
} else {
  app.post('/internal/v1/events', async (_req, reply) => reply.code(202).send())
}
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })
