// Summarises a .cpuprofile (from SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR" npm run bench -- cpu):
// self time by package (or by file of cloudoreg, or by V8/Node category), then the heaviest functions.
//   node bench/profile.mjs DIR/CPU.*.cpuprofile [top functions, default 40] [filter: a package or file part]
import { readFileSync } from 'node:fs'

const [file, topArg, filter] = process.argv.slice(2)
const profile = JSON.parse(readFileSync(file, 'utf8'))
const byId = new Map(profile.nodes.map(n => [n.id, n]))
const dt = new Map()
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i]
  dt.set(id, (dt.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
}
const total = [...dt.values()].reduce((a, b) => a + b, 0)

function where (cf) {
  const url = cf.url
  if (url === '') return cf.functionName === '' ? '(anonymous V8)' : `(${cf.functionName})`
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url.slice(url.lastIndexOf('node_modules/') >= 0 ? url.lastIndexOf('node_modules/') : 0))
  if (m) return m[1]
  if (url.startsWith('node:')) return url
  const d = url.indexOf('/dist/')
  return d >= 0 ? url.slice(d + 1) : url
}

const pkg = new Map()
const fn = new Map()
for (const [id, t] of dt) {
  const cf = byId.get(id).callFrame
  const w = where(cf)
  pkg.set(w, (pkg.get(w) ?? 0) + t)
  if (filter && !w.includes(filter)) continue
  const key = `${cf.functionName || '(anonymous)'} ${w}:${cf.lineNumber + 1}`
  fn.set(key, (fn.get(key) ?? 0) + t)
}
const pct = t => (100 * t / total).toFixed(1).padStart(5) + '%'
console.log(`sampled ${(total / 1e6).toFixed(1)} s`)
console.log('\nself time by package / file:')
for (const [k, t] of [...pkg].sort((a, b) => b[1] - a[1]).slice(0, 40)) console.log(`${pct(t)}  ${k}`)
console.log(`\nheaviest functions${filter ? ` in ${filter}` : ''}:`)
for (const [k, t] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg ?? 40))) console.log(`${pct(t)}  ${k}`)
