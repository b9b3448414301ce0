import type { EventHandler } from '../dispatcher.js'
import { appAuthCreate, type CreateDeps } from './app-auth-create.js'

export type HandlerDeps = CreateDeps

/** Event types cloudoreg acts on; every other type is stored and marked ignored. */
export function createHandlers (deps: HandlerDeps): Map<string, EventHandler> {
  return new Map([
    ['ApplicationAuthentication.create', appAuthCreate(deps)]
  ])
}
