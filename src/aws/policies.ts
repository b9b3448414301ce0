/**
 * The IAM documents a customer creates for cloudoreg. The permission policy is all a
 * verification uses: the session cloudoreg assumes can only ask who it is (see the session
 * policy in sts.ts), and RHSM's mapping needs nothing from the role.
 */
export const PERMISSION_POLICY = {
  Version: '2012-10-17',
  Statement: [{ Sid: 'RedHatCloudAccessVerification', Effect: 'Allow', Action: ['sts:GetCallerIdentity'], Resource: '*' }]
} as const

/** The trust policy of a role: Red Hat's account may assume it, only with this source's external id. */
export function trustPolicy (redHatAccountId: string, externalId: string): Record<string, unknown> {
  return {
    Version: '2012-10-17',
    Statement: [{
      Effect: 'Allow',
      Principal: { AWS: `arn:aws:iam::${redHatAccountId}:root` },
      Action: 'sts:AssumeRole',
      Condition: { StringEquals: { 'sts:ExternalId': externalId } }
    }]
  }
}
