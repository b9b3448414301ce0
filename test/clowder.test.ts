import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { TLSSocket } from 'node:tls'
import pg from 'pg'
import t from 'tap'
import { clowderSettings, type ClowderFile } from '../src/clowder.js'
import { loadConfig } from '../src/config.js'
import { kafkaConnection } from '../src/kafka/client.js'
import { poolConnection } from '../src/store/db.js'
import { fixturesDir, readFixture } from './helpers/fixtures.js'
import { recordSecrets } from './helpers/secrets.js'

const FIXTURE = join(fixturesDir, 'cdappconfig.json')
const sample: any = readFixture('cdappconfig.json')
const KAFKA_CA: string = sample.kafka.brokers[0].cacert
const DB_CA: string = sample.database.rdsCa
recordSecrets([sample.kafka.brokers[0].sasl.password, sample.database.password, sample.database.adminPassword])

const scratch = mkdtempSync(join(tmpdir(), 'cloudoreg-clowder-test-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
let files = 0
function scratchFile (text: string): string {
  const path = join(scratch, `file-${files++}`)
  writeFileSync(path, text)
  return path
}

t.test('every field of a realistic cdappconfig.json lands in its setting', async t => {
  t.same(clowderSettings(sample), {
    settings: {
      PORT: '8000',
      METRICS_PORT: '9000',
      PUSH_PORT: '10000',
      KAFKA_BROKERS: 'env-ephemeral-7x2kq-kafka-bootstrap.ephemeral-7x2kq.svc:9093,env-ephemeral-7x2kq-kafka-1.ephemeral-7x2kq.svc:9094',
      KAFKA_SSL: 'true',
      KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
      KAFKA_SASL_USERNAME: 'cloudoreg-kafka-user',
      KAFKA_SASL_PASSWORD: 'Kc9!vX#2q@Lm/Pz=',
      SOURCES_EVENT_TOPIC: 'platform.sources.event-stream-ephemeral-7x2kq',
      SOURCES_STATUS_TOPIC: 'platform.sources.status-ephemeral-7x2kq',
      DATABASE_URL: 'postgresql://cloudoreg_user:p%40ss%3Aw%2Frd%25%3F%23%26x%20y@cloudoreg-db.c9akciq32.us-east-1.rds.amazonaws.com:5432/cloudoreg?sslmode=verify-full',
      SOURCES_API_URL: 'http://sources-api-svc.ephemeral-7x2kq.svc:8000'
    },
    pem: { KAFKA_CA_PATH: KAFKA_CA, DATABASE_CA_PATH: DB_CA }
  }, 'exactly these settings: nothing else in the file (admin credentials, rbac, metadata) is taken')

  const c = loadConfig({ ACG_CONFIG: FIXTURE })
  t.match(c, {
    PORT: 8000,
    METRICS_PORT: 9000,
    PUSH_PORT: 10000,
    KAFKA_SSL: true,
    KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
    KAFKA_SASL_USERNAME: 'cloudoreg-kafka-user',
    KAFKA_SASL_PASSWORD: 'Kc9!vX#2q@Lm/Pz=',
    SOURCES_EVENT_TOPIC: 'platform.sources.event-stream-ephemeral-7x2kq',
    SOURCES_STATUS_TOPIC: 'platform.sources.status-ephemeral-7x2kq',
    SOURCES_API_URL: 'http://sources-api-svc.ephemeral-7x2kq.svc:8000',
    statusSink: 'kafka'
  })
  t.same(c.kafkaBrokers, ['env-ephemeral-7x2kq-kafka-bootstrap.ephemeral-7x2kq.svc:9093', 'env-ephemeral-7x2kq-kafka-1.ephemeral-7x2kq.svc:9094'])

  // The database URL as node-postgres reads it: the password's @ : / % ? # & and space survive.
  const client = new pg.Client({ connectionString: c.DATABASE_URL })
  t.match(client, { user: 'cloudoreg_user', host: 'cloudoreg-db.c9akciq32.us-east-1.rds.amazonaws.com', port: 5432, database: 'cloudoreg' })
  t.equal(client.password, 'p@ss:w/rd%?#&x y')
  t.equal(new URL(c.DATABASE_URL!).searchParams.get('sslmode'), 'verify-full')

  for (const [key, pem] of [['KAFKA_CA_PATH', KAFKA_CA], ['DATABASE_CA_PATH', DB_CA]] as const) {
    const path = c[key]!
    t.ok(path.startsWith(tmpdir()), `${key} is under the temporary directory`)
    t.equal(readFileSync(path, 'utf8'), pem, `${key} holds the PEM text`)
    t.equal(statSync(path).mode & 0o777, 0o600, `${key} is readable by its owner only`)
  }
  t.not(c.KAFKA_CA_PATH, loadConfig({ ACG_CONFIG: FIXTURE }).KAFKA_CA_PATH, 'each load writes its own files')
})

t.test('a variable set in the environment wins over Clowder, key by key; an empty one does not', async t => {
  const caPath = scratchFile('env CA')
  const c = loadConfig({
    ACG_CONFIG: FIXTURE,
    PORT: '8080',
    METRICS_PORT: '',
    KAFKA_BROKERS: 'kafka.local:9092',
    KAFKA_SASL_PASSWORD: 'from-the-environment',
    KAFKA_CA_PATH: caPath,
    SOURCES_STATUS_TOPIC: 'my.status',
    DATABASE_URL: 'postgres://me@db.local/cloudoreg',
    SOURCES_API_URL: 'http://sources.local:8000'
  })
  t.match(c, {
    PORT: 8080,
    METRICS_PORT: 9000,
    KAFKA_SASL_PASSWORD: 'from-the-environment',
    KAFKA_SASL_USERNAME: 'cloudoreg-kafka-user',
    KAFKA_CA_PATH: caPath,
    SOURCES_STATUS_TOPIC: 'my.status',
    SOURCES_EVENT_TOPIC: 'platform.sources.event-stream-ephemeral-7x2kq',
    DATABASE_URL: 'postgres://me@db.local/cloudoreg',
    SOURCES_API_URL: 'http://sources.local:8000'
  })
  t.same(c.kafkaBrokers, ['kafka.local:9092'])
  t.equal(readFileSync(c.DATABASE_CA_PATH!, 'utf8'), DB_CA, 'keys the environment leaves unset still come from Clowder')
})

t.test('a missing, unreadable or malformed file stops start-up with a message naming it', async t => {
  const missing = join(scratch, 'nowhere', 'cdappconfig.json')
  t.throws(() => loadConfig({ ACG_CONFIG: missing }), { code: 'CLOUDOREG_CONFIG', message: `Invalid configuration: ACG_CONFIG=${missing} cannot be read (ENOENT)` })
  t.throws(() => loadConfig({ ACG_CONFIG: scratch }), { code: 'CLOUDOREG_CONFIG', message: `ACG_CONFIG=${scratch} cannot be read (EISDIR)` })

  const broken = scratchFile('{"database": {"password": "hunter2-very-secret" "name": "x"}}')
  const err = t.throws(() => loadConfig({ ACG_CONFIG: broken }), { code: 'CLOUDOREG_CONFIG', message: `ACG_CONFIG=${broken} is not valid JSON` }) as Error
  t.notMatch(err.message, 'hunter2', 'the message does not quote the file around the error')

  const list = scratchFile('[]')
  t.throws(() => loadConfig({ ACG_CONFIG: list }), { message: `ACG_CONFIG=${list} does not hold a JSON object` })
  const shape = scratchFile('{"kafka": {"brokers": "broker:9092"}}')
  t.throws(() => loadConfig({ ACG_CONFIG: shape }), { code: 'CLOUDOREG_CONFIG', message: `ACG_CONFIG=${shape} does not look like a Clowder cdappconfig.json` })

  const badPort = scratchFile('{"webPort": "eighty"}')
  t.throws(() => loadConfig({ ACG_CONFIG: badPort }), { code: 'CLOUDOREG_CONFIG', message: new RegExp(`PORT.*\\(PORT from ACG_CONFIG=${badPort}\\)`) })
  const gssapi = scratchFile(JSON.stringify({ kafka: { brokers: [{ hostname: 'b', port: 9092, sasl: { username: 'u', password: 'p', saslMechanism: 'GSSAPI' } }] } }))
  t.throws(() => loadConfig({ ACG_CONFIG: gssapi }), { message: /KAFKA_SASL_MECHANISM.*from ACG_CONFIG=/ })

  t.equal(loadConfig({ ACG_CONFIG: '' }).PORT, 8000, 'an empty ACG_CONFIG means no Clowder')
})

t.test('the mapping follows what each Clowder version and provider writes', async t => {
  const map = (c: ClowderFile): Record<string, string> => clowderSettings(c).settings
  t.same(clowderSettings({}), { settings: {}, pem: {} }, 'an app that asks for nothing gets nothing')
  t.same(map({ publicPort: 8001 }), { PORT: '8001' }, 'publicPort where webPort is absent')

  const broker = { hostname: 'kafka', port: 9092 }
  t.same(map({ kafka: { brokers: [broker] } }), { KAFKA_BROKERS: 'kafka:9092' }, 'a local plaintext Kafka: no security settings')
  t.same(map({ kafka: { brokers: [{ hostname: 'kafka' }] } }), { KAFKA_BROKERS: 'kafka:9092' }, 'the default port')
  t.same(clowderSettings({ kafka: { brokers: [{ ...broker, cacert: 'CA', securityProtocol: 'PLAINTEXT' }] } }).pem, {}, 'no CA for a plaintext broker')
  t.same(clowderSettings({ kafka: { brokers: [{ ...broker, cacert: 'CA', securityProtocol: 'SSL' }] } }), {
    settings: { KAFKA_BROKERS: 'kafka:9092', KAFKA_SSL: 'true' },
    pem: { KAFKA_CA_PATH: 'CA' }
  }, 'TLS without SASL')
  t.match(map({ kafka: { brokers: [{ ...broker, authtype: 'sasl', sasl: { username: 'u', password: 'p', saslMechanism: 'PLAIN', securityProtocol: 'SASL_SSL' } }] } }),
    { KAFKA_SSL: 'true', KAFKA_SASL_MECHANISM: 'PLAIN' }, 'older Clowder: securityProtocol inside the sasl stanza')
  t.same(map({ kafka: { topics: [{ requestedName: 'platform.sources.status', name: 'platform.sources.status' }] } }),
    { SOURCES_STATUS_TOPIC: 'platform.sources.status' }, 'a topic whose real name is its requested name')

  t.same(map({ database: { hostname: 'db', port: 5432, name: 'cloudoreg', username: 'u', password: '', sslMode: 'disable' } }),
    { DATABASE_URL: 'postgresql://u@db:5432/cloudoreg?sslmode=disable' }, 'the local database provider: no password, no TLS')
  t.same(map({ database: { hostname: 'fd00::5', name: 'n', username: 'u', password: 'p' } }), { DATABASE_URL: 'postgresql://u:p@[fd00::5]:5432/n' })
  t.same(map({ database: { name: 'n' } }), {}, 'no host, no database')

  const sources = (e: ClowderFile['endpoints'], p: ClowderFile['privateEndpoints'] = []): string | undefined => map({ endpoints: e, privateEndpoints: p }).SOURCES_API_URL
  t.equal(sources([], [{ name: 'svc', app: 'sources-api', hostname: 'sources-private', port: 10000 }]), 'http://sources-private:10000', 'a private endpoint when there is no public one')
  t.equal(sources([{ name: 'svc', app: 'sources-api', hostname: 'sources-public', port: 8000 }], [{ name: 'svc', app: 'sources-api', hostname: 'sources-private', port: 10000 }]),
    'http://sources-public:8000', 'the public endpoint first: sources-api serves its API there')
  t.equal(sources([{ name: 'worker', app: 'sources-api', hostname: 'w', port: 8000 }, { name: 'svc', app: 'sources-api', hostname: 's', port: 8000 }]), 'http://s:8000', 'the svc deployment first')
  t.equal(sources([{ name: 'svc', app: 'sources-api', hostname: 's', port: 8000, tlsPort: 8800 }]), 'http://s:8000', 'the plain port when both are open')
  t.equal(sources([{ name: 'svc', app: 'sources-api', hostname: 's', port: 0, tlsPort: 8800 }]), 'https://s:8800', 'https when only the TLS port is open')
  t.equal(sources([{ name: 'svc', app: 'rbac', hostname: 'r', port: 8000 }]), undefined, 'another app is not sources-api')
  t.equal(sources([{ name: 'svc', app: 'sources-api', hostname: 's' }]), undefined, 'an endpoint with no port')
})

t.test('kafkaConnection: SASL and TLS for every Kafka client, from plain environment settings', async t => {
  const brokers = { KAFKA_BROKERS: 'k1:9093,k2:9093' }
  t.same(kafkaConnection(loadConfig(brokers)), { brokers: ['k1:9093', 'k2:9093'], ssl: false, sasl: undefined }, 'plaintext without security settings')
  t.same(kafkaConnection(loadConfig({ ...brokers, KAFKA_SSL: 'true', KAFKA_SASL_MECHANISM: 'SCRAM-SHA-256', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'pw' })), {
    brokers: ['k1:9093', 'k2:9093'],
    ssl: true,
    sasl: { mechanism: 'scram-sha-256', username: 'u', password: 'pw' }
  }, 'TLS against the system CAs; the mechanism in the lower case kafkajs expects')
  t.match(kafkaConnection(loadConfig({ ...brokers, KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'pw' })),
    { ssl: false, sasl: { mechanism: 'plain' } }, 'SASL over plaintext')
  const caPath = scratchFile(KAFKA_CA)
  t.same(kafkaConnection(loadConfig({ ...brokers, KAFKA_CA_PATH: caPath })).ssl, { ca: [KAFKA_CA] }, 'a CA file is read and turns TLS on')
  t.throws(() => loadConfig({ ...brokers, KAFKA_SASL_MECHANISM: 'PLAIN' }), { message: /KAFKA_SASL_MECHANISM needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD/ })
  t.throws(() => loadConfig({ ...brokers, KAFKA_SASL_MECHANISM: 'GSSAPI', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'pw' }), { message: /KAFKA_SASL_MECHANISM/ })
  t.throws(() => loadConfig({ ...brokers, KAFKA_SSL: 'maybe' }), { message: /KAFKA_SSL/ })

  t.same(kafkaConnection(loadConfig({ ACG_CONFIG: FIXTURE })), {
    brokers: ['env-ephemeral-7x2kq-kafka-bootstrap.ephemeral-7x2kq.svc:9093', 'env-ephemeral-7x2kq-kafka-1.ephemeral-7x2kq.svc:9094'],
    ssl: { ca: [KAFKA_CA] },
    sasl: { mechanism: 'scram-sha-512', username: 'cloudoreg-kafka-user', password: 'Kc9!vX#2q@Lm/Pz=' }
  }, 'and from Clowder')
})

t.test('poolConnection: sslmode and the CA become one ssl option that pg keeps', async t => {
  const url = 'postgresql://u:p%40ss@db.example:5432/cloudoreg?application_name=cloudoreg'
  t.same(poolConnection(url), { connectionString: url }, 'no sslmode, no CA: the URL as given (pg and PGSSLMODE decide)')
  t.same(poolConnection(`${url}&sslmode=disable`), { connectionString: url, ssl: false })
  t.same(poolConnection(`${url}&sslmode=allow`), { connectionString: url, ssl: false })
  t.same(poolConnection(`${url}&sslmode=prefer`), { connectionString: url, ssl: { rejectUnauthorized: false } })
  t.same(poolConnection(`${url}&sslmode=require`), { connectionString: url, ssl: { rejectUnauthorized: false } })
  t.same(poolConnection(`${url}&sslmode=verify-full`), { connectionString: url, ssl: {} }, 'verify-full without a CA: the system CAs')

  const caPath = scratchFile(DB_CA)
  t.same(poolConnection(url, caPath), { connectionString: url, ssl: { ca: DB_CA } }, 'a CA without sslmode means verify-full')
  t.same(poolConnection(`${url}&sslmode=verify-full`, caPath), { connectionString: url, ssl: { ca: DB_CA } })
  t.match(poolConnection(`${url}&sslmode=verify-ca`, caPath), { connectionString: url, ssl: { ca: DB_CA, checkServerIdentity: Function } })
  t.match(poolConnection(`${url}&sslmode=require`, caPath), { connectionString: url, ssl: { ca: DB_CA, checkServerIdentity: Function } }, 'require with a CA checks the chain, as libpq does')
  t.same(poolConnection(`${url}&sslmode=verify-full&sslrootcert=${encodeURIComponent(caPath)}&sslcert=${encodeURIComponent(caPath)}&sslkey=${encodeURIComponent(caPath)}`),
    { connectionString: url, ssl: { ca: DB_CA, cert: DB_CA, key: DB_CA } }, 'libpq file parameters are read and taken out of the URL')

  t.throws(() => poolConnection(`${url}&sslmode=verify-ca`), { code: 'CLOUDOREG_CONFIG', message: /sslmode=verify-ca needs DATABASE_CA_PATH/ })
  t.throws(() => poolConnection(`${url}&sslmode=strict`), { code: 'CLOUDOREG_CONFIG', message: /sslmode=strict is not one of disable, allow, prefer, require, verify-ca, verify-full/ })
  t.throws(() => poolConnection(`${url}&sslmode=require&ssl=true`), { code: 'CLOUDOREG_CONFIG', message: /use sslmode alone/ })
  const unparsable = t.throws(() => poolConnection('postgres://u:hunter2-db-secret@[::1/db?sslmode=require'), { code: 'CLOUDOREG_CONFIG', message: 'DATABASE_URL is not a valid URL' }) as Error
  t.notMatch(unparsable.message, 'hunter2', 'the URL, password and all, is not quoted')
  const missing = join(scratch, 'no-such-ca.pem')
  t.throws(() => poolConnection(url, missing), { code: 'CLOUDOREG_CONFIG', message: `DATABASE_CA_PATH=${missing} cannot be read (ENOENT)` })
  t.throws(() => loadConfig({ DATABASE_CA_PATH: caPath }), { message: /DATABASE_CA_PATH needs DATABASE_URL/ })
})

// Server side of a test-only certificate for "localhost", signed by the CA in the fixture's rdsCa.
const SERVER_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgiC3HO8bO+X4Sb+JO
JMZXmJheZ26jZaFmfmd/fj1/7FWhRANCAARa8cYrfPF45diyCW7MZkNzV0NBjgEh
7d9gb6bkVCGVYomemwpB2EId+W6evwwXTNPfMVS3JHpizb3/5IzPsPnf
-----END PRIVATE KEY-----
`
const SERVER_CERT = `-----BEGIN CERTIFICATE-----
MIIBtTCCAVugAwIBAgIUUn/+FLmhntcy0dMeVkb7VPpIvQowCgYIKoZIzj0EAwIw
JTEjMCEGA1UEAwwaY2xvdWRvcmVnIHRlc3QgZGF0YWJhc2UgQ0EwIBcNMjYxMTI4
MTAxMTU0WhgPMjEyNjExMDQxMDExNTRaMBQxEjAQBgNVBAMMCWxvY2FsaG9zdDBZ
MBMGByqGSM49AgEGCCqGSM49AwEHA0IABFrxxit88Xjl2LIJbsxmQ3NXQ0GOASHt
32BvpuRUIZViiZ6bCkHYQh35bp6/DBdM098xVLckemLNvf/kjM+w+d+jeDB2MBQG
A1UdEQQNMAuCCWxvY2FsaG9zdDAJBgNVHRMEAjAAMBMGA1UdJQQMMAoGCCsGAQUF
BwMBMB0GA1UdDgQWBBSY32avkANFj35lFK6Oq177Bx99XzAfBgNVHSMEGDAWgBRQ
xvw9GQ5m5Le7QG68YJEesvUxGDAKBggqhkjOPQQDAgNIADBFAiAJBOIEsWDhKsaP
1LsU7JFJW4GNdAOHz0O2pQ3bckh/+QIhAKjVlnGk1sN7NDFFQ0V2uMV3naNcLI4K
LbaPftZp744Y
-----END CERTIFICATE-----
`

/** An ErrorResponse, the first thing a real server could answer: it ends the client's connect() with our text. */
function errorResponse (message: string): Buffer {
  const fields = Buffer.from(`SFATAL\0C28000\0M${message}\0\0`)
  const head = Buffer.alloc(5)
  head.write('E')
  head.writeInt32BE(fields.length + 4, 1)
  return Buffer.concat([head, fields])
}

/** Speaks PostgreSQL's TLS negotiation with the certificate above, then says how the session went. */
async function fakeTlsPostgres (): Promise<{ port: number, close: () => Promise<void> }> {
  const sockets = new Set<Socket>()
  const server = createServer(socket => {
    sockets.add(socket)
    socket.on('error', () => {})
    socket.once('data', chunk => {
      if (chunk.readInt32BE(4) !== 80877103) { // not an SSLRequest: a plaintext startup message
        socket.end(errorResponse('plaintext session'))
        return
      }
      socket.write('S')
      const secure = new TLSSocket(socket, { isServer: true, key: SERVER_KEY, cert: SERVER_CERT })
      secure.on('error', () => {})
      secure.once('data', () => secure.end(errorResponse('TLS session')))
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as { port: number }).port,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise(resolve => server.close(resolve))
    }
  }
}

t.test('node-postgres negotiates TLS as sslmode says, with the CA Clowder gave', async t => {
  const server = await fakeTlsPostgres()
  t.teardown(server.close)
  const caPath = loadConfig({ ACG_CONFIG: FIXTURE }).DATABASE_CA_PATH!
  const otherCa = scratchFile(KAFKA_CA)
  async function session (options: pg.ClientConfig): Promise<string> {
    const client = new pg.Client({ ...options, connectionTimeoutMillis: 5000 })
    client.on('error', () => {})
    try {
      await client.connect()
      return 'connected'
    } catch (err) {
      return (err as Error).message
    } finally {
      await client.end().catch(() => {})
    }
  }
  const at = (host: string, mode: string): string => `postgresql://u:pw@${host}:${server.port}/cloudoreg?sslmode=${mode}`

  t.equal(await session(poolConnection(at('localhost', 'verify-full'), caPath)), 'TLS session', 'verify-full: the CA from Clowder and the host name match')
  t.match(await session(poolConnection(at('127.0.0.1', 'verify-full'), caPath)), /IP: 127\.0\.0\.1 is not in the cert's list/, 'verify-full: a host name the certificate does not name is refused')
  t.equal(await session(poolConnection(at('127.0.0.1', 'verify-ca'), caPath)), 'TLS session', 'verify-ca: the chain is enough')
  t.match(await session(poolConnection(at('localhost', 'verify-ca'), otherCa)), /unable to verify|self.signed|unable to get/, 'verify-ca: another CA is refused')
  t.match(await session(poolConnection(at('localhost', 'verify-full'))), /unable to verify|self.signed|unable to get/, 'verify-full without our CA: the system CAs do not know it')
  t.equal(await session(poolConnection(at('127.0.0.1', 'require'))), 'TLS session', 'require without a CA: encrypted, not verified')
  t.equal(await session(poolConnection(at('localhost', 'disable'), caPath)), 'plaintext session', 'disable wins over a CA')

  // The pitfall poolConnection avoids: pg lets the URL's sslmode replace the ssl option, CA and all.
  t.match(await session({ connectionString: at('localhost', 'verify-full'), ssl: { ca: DB_CA } }), /unable to verify|self.signed|unable to get/)
})
