import { CHECK_STEPS, type CheckStep, type Registration } from '../store/registrations.js'
import { ERROR_CODES, type ErrorCode } from '../pipeline/error-codes.js'

export type StepResult = 'passed' | 'failed' | 'not reached' | 'not checked'

/** Each step of the last check and how it went, in order. */
export function stepResults (r: Registration): Array<{ step: CheckStep, result: StepResult }> {
  const failedAt = r.failedStep === null ? -1 : CHECK_STEPS.indexOf(r.failedStep)
  return CHECK_STEPS.map((step, i) => {
    let result: StepResult = 'not checked'
    if (failedAt >= 0) result = i < failedAt ? 'passed' : i === failedAt ? 'failed' : 'not reached'
    else if (r.verifiedAt !== null && r.lastErrorCode === null) result = 'passed'
    return { step, result }
  })
}

/** What the customer should change, in words, for the step that failed and the code received there. */
export function whatToFix (r: Registration, redHatAccount: string | null): string | null {
  const code = r.lastErrorCode as ErrorCode | null
  if (code === null) return null
  const account = redHatAccount ?? "Red Hat's AWS account (see GET /api/cloudoreg/v1/sysconfig)"
  const externalId = r.externalId === null ? 'the external ID shown in the wizard' : `"${r.externalId}"`
  const role = r.roleArn ?? 'the role'
  const received = r.upstreamCode === null ? '' : ` (AWS answered ${r.upstreamCode})`
  if (r.failedStep === 'AssumeRole' && (code === 'CG3002' || code === 'CG3000')) {
    return `AWS refused to let ${account} assume ${role}${received}. Check that the role exists, and replace its trust policy ` +
      `with trust_policy: it must name arn:aws:iam::${redHatAccount ?? '<Red Hat account>'}:root as the principal and require ` +
      `sts:ExternalId ${externalId}.`
  }
  if (r.failedStep === 'GetCallerIdentity' && code === 'CG3002') {
    return `The role was assumed, but AWS denied its session sts:GetCallerIdentity${received}: a permissions boundary or a ` +
      'service control policy denies it. Allow sts:GetCallerIdentity (permission_policy).'
  }
  if (code === 'CR5000') {
    return `cloudoreg gave up after repeated failures at the step "${r.failedStep ?? 'unknown'}" (last error: ${r.upstreamCode ?? 'unknown'}). ` +
      'This is usually temporary on the side of an upstream: ask for a check (POST .../check) to try again.'
  }
  return ERROR_CODES[code] ?? r.lastErrorMessage
}
