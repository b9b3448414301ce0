import { readFileSync, writeFileSync } from 'node:fs'
import t from 'tap'
import { startBareApp } from './helpers/stack.js'

const committed = new URL('../openapi/openapi.json', import.meta.url)

t.test('the served OpenAPI document is the committed openapi/openapi.json (npm run openapi rewrites it)', async t => {
  const app = await startBareApp(t)
  const res = await app.inject({ method: 'GET', url: '/api/cloudoreg/v1/openapi.json' })
  t.equal(res.statusCode, 200)
  const served = res.json()
  const text = JSON.stringify(served, null, 2) + '\n'
  if (process.env.UPDATE_OPENAPI === '1') writeFileSync(committed, text)
  t.equal(text, readFileSync(committed, 'utf8'), 'openapi/openapi.json is up to date; run npm run openapi')

  t.equal(served.openapi, '3.0.3')
  t.same(Object.keys(served.paths).sort(), [
    '/api/cloudigrade/v2/sysconfig/',
    '/api/cloudoreg/v1/sources',
    '/api/cloudoreg/v1/sources/{source_id}',
    '/api/cloudoreg/v1/sources/{source_id}/check',
    '/api/cloudoreg/v1/sources/{source_id}/diagnosis',
    '/api/cloudoreg/v1/sources/{source_id}/history',
    '/api/cloudoreg/v1/sysconfig',
    '/healthz',
    '/internal/api/cloudigrade/v1/availability_status',
    '/internal/api/cloudoreg/v1/availability_status',
    '/internal/v1/dead-letters',
    '/internal/v1/dead-letters/replay',
    '/internal/v1/events',
    '/internal/v1/events/{id}',
    '/internal/v1/events/{id}/replay',
    '/internal/v1/reconcile',
    '/internal/v1/reconcile/{id}',
    '/internal/v1/sources/{source_id}',
    '/internal/v1/sources/{source_id}/history',
    '/internal/v1/sources/{source_id}/reverify',
    '/internal/v1/status-messages/parked',
    '/internal/v1/status-messages/{id}/retry',
    '/internal/v1/tasks/{id}',
    '/internal/v1/tombstones/{application_id}',
    '/readyz'
  ])
  t.ok(served.components.schemas.Problem, 'Problem is a named schema')
  t.ok(served.components.schemas.SourceStatus, 'SourceStatus is a named schema')
  t.same(served.paths['/api/cloudoreg/v1/sources'].get.security, [{ identity: [] }])

  const ui = await app.inject({ method: 'GET', url: '/api/cloudoreg/v1/docs/' })
  t.equal(ui.statusCode, 200)
  t.match(ui.headers['content-type'], /text\/html/)
  t.match(ui.body, /swagger-ui/i)
})
