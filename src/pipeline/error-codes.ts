/** Codes sources users already know (CG*) and cloudoreg's own (CR*), with what the customer should do. */
export const ERROR_CODES = {
  CG1001: 'The same role ARN is already registered for another source.',
  CG1002: 'The same AWS account is already registered for another source of your organization.',
  CG1004: 'The role ARN is not valid; it must look like arn:aws:iam::<12-digit account>:role/<name>.',
  CG2000: 'The authentication of this application was not found; remove the application and add it again.',
  CG2001: 'The authentication type is not supported; use a role ARN (cloud-meter-arn).',
  CG2002: 'The authentication is not attached to an application.',
  CG2004: 'No role ARN was given; enter the ARN of the IAM role you created for Red Hat.',
  CG3000: 'The IAM role could not be verified with AWS; check the role and try again.',
  CG3002: 'AWS denied access to the IAM role; check its trust policy names Red Hat\'s account and the external ID shown in the wizard.',
  CG3003: 'The role could not be assumed as an IAM role session; check that the ARN names a role, not a user.',
  CR4000: 'Red Hat Subscription Management rejected the AWS account.',
  CR4001: 'This AWS account is already linked to another Red Hat organization.',
  CR5000: 'The account could not be verified after repeated attempts; it will be checked again later, or remove and re-add the source.'
} as const

export type ErrorCode = keyof typeof ERROR_CODES

/** The text sources-api shows the customer; `extra` adds an upstream's reason (never a secret). */
export function errorText (code: ErrorCode, extra?: string): string {
  const base = `Could not enable cloud metering. Error code ${code}. ${ERROR_CODES[code]}`
  return extra ? `${base} ${extra}` : base
}
