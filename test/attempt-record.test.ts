import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { Agent } from 'undici'
import { decidedBy, failureOf, stepOf } from '../src/pipeline/attempts.js'
import { UpstreamError } from '../src/upstream/errors.js'
import { call } from '../src/upstream/http.js'

// What an attempt record says of a failure, in the terms operators filter dead letters on.
t.test('a thrown failure: the upstream, its HTTP status or AWS error code', async t => {
  const of = (err: Error): ReturnType<typeof failureOf> => failureOf(err, 'RHSM', err.message)
  t.match(of(new UpstreamError('rhsm', 'transient', 'answered 503', 503)), { upstream: 'rhsm', step: 'RHSM', httpStatus: 503, errorCode: 'HTTP 503', error: 'rhsm: answered 503' })
  t.match(of(Object.assign(new UpstreamError('sts', 'transient', 'AssumeRole failed: Throttling', 400), { errorName: 'Throttling' })), { upstream: 'sts', httpStatus: 400, errorCode: 'Throttling' })
  t.match(of(new UpstreamError('sts', 'transient', 'AssumeRole failed: Throttling', 400)), { errorCode: 'HTTP 400' }, 'the code is what the error carries, not read back from its message')
  t.match(of(new UpstreamError('sts', 'transient', 'GetCallerIdentity returned no account')), { upstream: 'sts', httpStatus: null, errorCode: null })
  t.match(of(new UpstreamError('sts', 'transient', 'strange', 502)), { errorCode: 'HTTP 502' }, 'an STS failure without a code: its status')
  t.match(of(Object.assign(new UpstreamError('sources', 'transient', 'GET failed: ECONNREFUSED'), { errorName: 'ECONNREFUSED' })), { upstream: 'sources', httpStatus: null, errorCode: 'ECONNREFUSED' })
  // What a request's AbortSignal timeout once put there: the DOMException's numeric code (23).
  t.match(of(Object.assign(new UpstreamError('rhsm', 'transient', 'POST failed: TimeoutError'), { errorName: 23 as unknown as string })),
    { upstream: 'rhsm', httpStatus: null, errorCode: null }, 'a code that is not text: none, and no exception')
  t.match(of(new Error('connection terminated unexpectedly')), { upstream: null, httpStatus: null, errorCode: null, error: 'connection terminated unexpectedly' }, 'not an upstream\'s')
  t.equal(stepOf({ step: 'AssumeRole' }), 'AssumeRole')
  t.equal(stepOf({}), null)
})

t.test('an outcome: the error code reported, and the upstream answer behind it', async t => {
  const registration = (failedStep: string | null, upstreamCode: string | null, lastErrorCode: string | null): any =>
    ({ note: 'x', registration: { failedStep, upstreamCode, lastErrorCode, lastErrorMessage: lastErrorCode === null ? null : 'words' } })
  t.match(decidedBy({ note: 'registered' }), { upstream: null, errorCode: null, outcomeCode: null })
  t.match(decidedBy(registration(null, null, null)), { upstream: null, outcomeCode: null })
  t.match(decidedBy(registration('AssumeRole', 'AccessDenied', 'CG3002')), { upstream: 'sts', step: 'AssumeRole', httpStatus: null, errorCode: 'AccessDenied', outcomeCode: 'CG3002', error: 'words' })
  t.match(decidedBy(registration('RHSM', 'HTTP 400: already verified', 'CR4000')), { upstream: 'rhsm', httpStatus: 400, errorCode: 'HTTP 400', outcomeCode: 'CR4000' })
  t.match(decidedBy(registration('read application', 'HTTP 404', 'CG2000')), { upstream: 'sources', httpStatus: 404, errorCode: 'HTTP 404' })
  t.match(decidedBy(registration('duplicates', null, 'CR4001')), { upstream: null, step: 'duplicates', errorCode: null, outcomeCode: 'CR4001' })
  t.match(decidedBy(registration(null, null, 'CG1004')), { upstream: null, step: null, outcomeCode: 'CG1004' })
})

t.test('a request that times out is recorded by a name that is text (TimeoutError), not the DOMException\'s numeric code', async t => {
  // A real server that takes the request and never answers.
  const server = createServer(() => {})
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const { port } = server.address() as AddressInfo
  const err = await call({ target: 'rhsm', dispatcher: new Agent(), method: 'GET', url: `http://127.0.0.1:${port}/x`, headers: {}, timeoutMs: 200, attempts: 1 })
    .then(() => undefined, (e: unknown) => e)
  t.ok(err instanceof UpstreamError, 'an upstream error')
  const { errorName } = err as UpstreamError
  t.equal(typeof errorName, 'string', `named ${String(errorName)}`)
  t.match(failureOf(err as Error, 'RHSM', 'timed out'), { upstream: 'rhsm', errorCode: errorName })
})
