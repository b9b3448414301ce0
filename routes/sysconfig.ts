import { Type } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { PERMISSION_POLICY, trustPolicy } from '../src/aws/policies.js'
import { sendProblem } from '../src/plugins/infrastructure/problem.js'
import { ProblemRef } from '../src/schemas.js'

const EXTERNAL_ID_PLACEHOLDER = '<the external ID shown in the wizard>'

const SysConfig = Type.Object({
  aws_account_id: Type.String({ description: 'The AWS account cloudoreg verifies roles from (STS GetCallerIdentity on its own credentials)', examples: ['998877665544'] }),
  aws_policies: Type.Object({
    traditional_inspection: Type.Record(Type.String(), Type.Unknown(), { description: 'The permission policy to attach to the role' })
  }),
  trust_policy: Type.Record(Type.String(), Type.Unknown(), {
    description: `The role's trust policy; replace ${EXTERNAL_ID_PLACEHOLDER} with the source's external id (GET .../sources/{id}/diagnosis gives it filled in)`
  }),
  version: Type.String({ examples: ['cloudoreg'] })
}, { description: 'What a customer must create in AWS before adding a source' })

/** Console front ends ask this before the wizard; cloudigrade's path is kept for them. */
export default async function sysconfig (fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  app.addHook('onRequest', app.auth.identity)
  const identitySecurity = [{ identity: [] }]
  for (const path of ['/api/cloudoreg/v1/sysconfig', '/api/cloudigrade/v2/sysconfig/']) {
    app.get(path, {
      config: { keepsAnswering: true },
      schema: {
        tags: ['status'],
        summary: 'The AWS account to trust and the policies to create (also at cloudigrade\'s /api/cloudigrade/v2/sysconfig/)',
        security: identitySecurity,
        response: { 200: SysConfig, 401: ProblemRef, 503: ProblemRef }
      }
    }, async (request, reply) => {
      let account: string
      try {
        account = await app.ownAwsAccount()
      } catch (err) {
        request.log.error({ err }, 'GetCallerIdentity on cloudoreg\'s own credentials failed')
        return sendProblem(reply, 503, 'the AWS account cloudoreg verifies from cannot be learnt from AWS right now; retry later', { 'retry-after': '30' })
      }
      return {
        aws_account_id: account,
        aws_policies: { traditional_inspection: PERMISSION_POLICY },
        trust_policy: trustPolicy(account, EXTERNAL_ID_PLACEHOLDER),
        version: 'cloudoreg'
      }
    })
  }
}
