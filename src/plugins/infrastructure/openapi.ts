import swagger from '@fastify/swagger'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

export const OPENAPI_PATH = '/api/cloudoreg/v1/openapi.json'
export const DOCS_PREFIX = '/api/cloudoreg/v1/docs'

/** The OpenAPI document is built from the route schemas; register before the routes. */
async function openapi (app: FastifyInstance, { version }: { version: string }): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'cloudoreg',
        version,
        description: 'Verifies AWS IAM roles of sources-api "RHEL management" applications, maps the AWS accounts in RHSM, ' +
          'reports availability to sources-api, and answers what the registration status of each source is.'
      },
      tags: [
        { name: 'status', description: 'Registration status, scoped to the org of x-rh-identity' },
        { name: 'ingress', description: 'Event push from the Kafka bridge' },
        { name: 'lifecycle', description: 'Re-checks and repair' },
        { name: 'operations', description: 'Probes and metrics' }
      ],
      components: {
        securitySchemes: {
          identity: { type: 'apiKey', in: 'header', name: 'x-rh-identity', description: 'base64 JSON; identity.org_id scopes every answer' },
          bearer: { type: 'http', scheme: 'bearer', description: 'PUSH_TOKEN on the push route; INTERNAL_TOKEN (or PUSH_TOKEN) on operator routes' },
          dapr: { type: 'apiKey', in: 'header', name: 'dapr-api-token', description: 'PUSH_TOKEN, as Dapr sends it' }
        }
      }
    },
    refResolver: {
      // Shared schemas appear under their own $id in components.schemas.
      buildLocalReference: (json, _baseUri, _fragment, i) => typeof json.$id === 'string' ? json.$id : `def-${i}`
    }
  })
  app.get(OPENAPI_PATH, { config: { keepsAnswering: true }, schema: { hide: true } }, async () => app.swagger())
}

export default fp(openapi, { name: 'openapi' })
