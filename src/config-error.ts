/**
 * What is wrong with the configuration: one line per problem, each naming its setting (and never
 * quoting a secret). Start-up stops with these lines.
 */
export class ConfigError extends Error {
  code = 'CLOUDOREG_CONFIG'
  readonly problems: string[]
  constructor (problems: string | string[]) {
    const list = Array.isArray(problems) ? problems : [problems.replace(/^Invalid configuration: /, '')]
    super(`Invalid configuration: ${list.join('; ')}`)
    this.problems = list
  }
}
