/** A setting that cannot work: start-up stops with this message, which names the setting (and never quotes a secret). */
export class ConfigError extends Error {
  code = 'CLOUDOREG_CONFIG'
}
