import { STATUS_CODES } from 'node:http'
import swagger from '@fastify/swagger'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

export const OPENAPI_PATH = '/api/cloudoreg/v1/openapi.json'
export const DOCS_PREFIX = '/api/cloudoreg/v1/docs'

type Media = { schema?: { $ref?: string }, example?: unknown, examples?: unknown }
type Response = { description: string, content?: Record<string, Media> }
type Document = { paths: Record<string, Record<string, { responses: Record<string, Response> }>> }

/** What each problem status means on this API, for the documented example. */
const PROBLEM_EXAMPLES: Record<string, string> = {
  400: 'querystring/limit must be <= 1000',
  401: 'x-rh-identity is missing',
  404: 'no source 7 in this org',
  409: 'event 42 is still pending',
  413: 'the body is larger than 4194304 bytes',
  503: 'shutting down; retry on another replica'
}

/**
 * Errors are problem+json, and every response is named: what Fastify's schemas cannot say is said
 * here, once for all routes (a route names its own responses where it can say more).
 */
export function documentProblems (document: Document): Document {
  for (const operations of Object.values(document.paths)) {
    for (const operation of Object.values(operations)) {
      for (const [status, response] of Object.entries(operation.responses)) {
        const title = STATUS_CODES[Number(status)] ?? 'Response'
        if (response.description === 'Default Response') response.description = title
        const json = response.content?.['application/json']
        if (json?.schema?.$ref !== '#/components/schemas/Problem') continue
        response.description = `${title}: problem details say what was wrong`
        response.content = {
          'application/problem+json': {
            schema: json.schema,
            example: { type: 'about:blank', title, status: Number(status), detail: PROBLEM_EXAMPLES[status] ?? title, instance: '/api/cloudoreg/v1/sources/7' }
          }
        }
      }
    }
  }
  return document
}

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
          bearer: { type: 'http', scheme: 'bearer', description: 'PUSH_TOKEN on the push route; INTERNAL_TOKEN (only) on operator routes' },
          dapr: { type: 'apiKey', in: 'header', name: 'dapr-api-token', description: 'PUSH_TOKEN, as Dapr sends it' }
        }
      }
    },
    transformObject: document => documentProblems((document as { openapiObject: unknown }).openapiObject as Document) as object,
    refResolver: {
      // Shared schemas appear under their own $id in components.schemas.
      buildLocalReference: (json, _baseUri, _fragment, i) => typeof json.$id === 'string' ? json.$id : `def-${i}`
    }
  })
  app.get(OPENAPI_PATH, { config: { keepsAnswering: true }, schema: { hide: true } }, async () => app.swagger())
  // Whoever opens the service's address in a browser lands on the documentation.
  app.get('/', { schema: { hide: true } }, async (_request, reply) => reply.redirect(`${DOCS_PREFIX}/`))
}

export default fp(openapi, { name: 'openapi' })
