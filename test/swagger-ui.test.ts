import { existsSync } from 'node:fs'
import { chromium } from 'playwright-core'
import t from 'tap'
import { eventually, identities, startStack } from './helpers/stack.js'

// Swagger UI as a person uses it: Debian's Chromium, headless, no network but cloudoreg itself.
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync']

t.test('Swagger UI renders every operation, and Try it out pushes the README event and reads its source', async t => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (.ci/run does), or set CHROMIUM_PATH`)
  const stack = await startStack(t)
  stack.sources.addSource({ sourceId: '7', applicationId: '42', authenticationId: '311', arn: 'arn:aws:iam::123456789012:role/redhat-cloud-meter', externalId: 'ext-7' })
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  const outside: string[] = []
  await page.route('**/*', async route => {
    if (route.request().url().startsWith(stack.url)) return route.continue()
    outside.push(route.request().url())
    return route.abort()
  })

  await page.goto(`${stack.url}/`)
  t.match(page.url(), /\/api\/cloudoreg\/v1\/docs\//, 'GET / leads to the docs')
  const document = await (await fetch(`${stack.url}/api/cloudoreg/v1/openapi.json`)).json() as { paths: Record<string, object> }
  const operations = Object.values(document.paths).reduce((n, ops) => n + Object.keys(ops).length, 0)
  await page.locator('.opblock').nth(operations - 1).waitFor()
  t.equal(await page.locator('.opblock').count(), operations, 'every operation is rendered')

  async function tryItOut (method: string, path: string, fill?: Record<string, string>): Promise<string> {
    const block = page.locator(`.opblock-${method}`, { has: page.locator(`.opblock-summary-path[data-path="${path}"]`) })
    await block.locator('.opblock-summary').click()
    await block.locator('button.try-out__btn').click()
    for (const [name, value] of Object.entries(fill ?? {})) await block.locator(`tr[data-param-name="${name}"] input`).fill(value)
    await block.locator('button.execute').click()
    const status = block.locator('.live-responses-table .response .response-col_status')
    await status.waitFor()
    return (await status.innerText()).trim()
  }

  t.equal(await tryItOut('post', '/internal/v1/events'), '202', 'the push route stores the README event')
  await eventually(async () => stack.sources.patches.length > 0 ? true : undefined, 20_000, 'the source to be decided')

  await page.locator('.auth-wrapper .authorize').click()
  await page.locator('.auth-container', { hasText: 'x-rh-identity' }).locator('input').fill(identities.base64.user_7654321)
  await page.locator('.auth-container', { hasText: 'x-rh-identity' }).locator('button.authorize').click()
  await page.locator('.dialog-ux button.close-modal').click()
  t.equal(await tryItOut('get', '/api/cloudoreg/v1/sources/{source_id}', { source_id: '7' }), '200', 'the source route answers for it')
  const body = await page.locator('.opblock-get', { has: page.locator('.opblock-summary-path[data-path="/api/cloudoreg/v1/sources/{source_id}"]') })
    .locator('.live-responses-table .response-col_description .microlight').first().innerText()
  t.match(JSON.parse(body), { source_id: '7', state: 'registered' })
  t.same(outside, [], 'the page asked for nothing outside cloudoreg')
})
