import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const repoRoot = fileURLToPath(new URL('../../', import.meta.url))

// A copy of ../shared/fixtures lives in the repository: CI clones only this repository.
export const fixturesDir = path.resolve(repoRoot, 'test', 'fixtures')

export function readFixtureText (relPath: string): string {
  return readFileSync(path.join(fixturesDir, relPath), 'utf8')
}

export function readFixture (relPath: string): any {
  return JSON.parse(readFixtureText(relPath))
}
