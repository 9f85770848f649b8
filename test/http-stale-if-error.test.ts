import { Readable } from 'node:stream'
import Fastify from 'fastify'
import t from 'tap'
import groupcache from '../lib/index.js'
import type { HttpResult } from './helpers/http.js'
import { matrix } from './helpers/matrix.js'

const STORED = 'groupcache; fwd=miss; stored'
// Express's final handler prints the stack of every error it answers, except under NODE_ENV=test.
process.env.NODE_ENV = 'test'
/** The real setImmediate, taken before the mocked clock replaces it: yielding with it lets socket I/O through. */
const realImmediate = setImmediate
const tick = () => new Promise((resolve) => realImmediate(resolve))

/**
 * stale-if-error (DESIGN §10) on both adapters and both stores, under the
 * mocked clock: a handler that throws or answers 5xx after a stored response
 * is answered with the stale body within the window, and with its error after it.
 */
await matrix(t, async (t, { app: makeApp }) => {
  let failure: 'none' | 'throw' | 503 | 'empty' | 'streamed' = 'none'
  let version = 0
  const handler = () => {
    version++
    if (failure === 'throw') throw new Error('origin down (test)')
    if (failure === 503) return { status: 503, body: 'unavailable' }
    if (failure === 'empty') return { status: 500 }
    if (failure === 'streamed') return { status: 502, body: Readable.from([Buffer.from('bad '), Buffer.from('gateway')]) }
    return { body: `feed v${version}`, headers: { 'content-type': 'text/plain', 'x-origin': 'feed' } }
  }
  // staleIfError from the plugin option; /strict turns it off; a store timeout far above what a mocked tick can reach.
  const app = await makeApp(
    [
      { method: 'GET', path: '/feed', cache: { group: 'feed', ttl: 10 }, handler },
      { method: 'GET', path: '/strict', cache: { group: 'feed', ttl: 10, staleIfError: 0 }, handler },
      { method: 'GET', path: '/long', cache: { group: 'feed', ttl: 10, staleIfError: 3600 }, handler }
    ],
    { staleIfError: 60, timeout: 600_000 }
  )
  t.clock.enter()
  /** Timers are mocked too: drive a request to its end by moving the clock a millisecond at a time. */
  const get = async (path: string): Promise<HttpResult> => {
    let done = false
    const request = app.request('GET', path).finally(() => (done = true))
    for (let i = 0; i < 5000 && !done; i++) {
      t.clock.advance(1)
      await tick()
    }
    return request
  }

  const first = await get('/feed')
  t.equal(first.headers['cache-status'], STORED)
  t.equal((await get('/strict')).headers['cache-status'], STORED)
  const long = await get('/long')
  t.equal(long.headers['cache-status'], STORED)
  t.clock.advance(15_000)

  failure = 'throw'
  const thrown = await get('/feed')
  t.equal(thrown.status, 200, 'a handler that throws, 5 s past expiry: the stale entry answers')
  t.equal(thrown.body, 'feed v1')
  t.match(thrown.headers['cache-status'], /^groupcache; fwd=stale; fwd-status=500; ttl=-\d+; detail=stale-if-error$/)
  t.equal(thrown.headers['x-origin'], 'feed', "the stored response's headers")
  t.match(thrown.headers['content-type'], /^text\/plain/, 'not the error page')
  t.equal(Number(thrown.headers['content-length']), Buffer.byteLength('feed v1'))
  t.ok(Number(thrown.headers.age) >= 15, 'Age counts from when it was stored')

  failure = 503
  const unavailable = await get('/feed')
  t.equal(unavailable.status, 200, 'a handler answering 503: the stale entry answers')
  t.equal(unavailable.body, 'feed v1')
  t.match(unavailable.headers['cache-status'], /^groupcache; fwd=stale; fwd-status=503; ttl=-\d+; detail=stale-if-error$/)

  failure = 'empty'
  t.equal((await get('/feed')).body, 'feed v1', 'a 5xx with no body: the stale entry answers')
  t.equal((await app.request('HEAD', '/feed')).status, 500, 'HEAD is not answered stale (its miss is never stored or shared)')
  failure = 'streamed'
  const streamed = await get('/feed')
  t.equal(streamed.status, 502, 'a streamed 5xx goes out as it is (part of it may be written already)')
  t.equal(streamed.body, 'bad gateway')
  failure = 503

  const strict = await get('/strict')
  t.equal(strict.status, 503, 'a route with staleIfError: 0 lets the error through')
  t.equal(strict.headers['cache-status'], 'groupcache; fwd=miss; detail=status')

  t.clock.advance(60_000)
  const late = await get('/feed')
  t.equal(late.status, 503, 'past the window, the error goes through')
  t.equal(late.body, 'unavailable')
  t.equal(late.headers['cache-status'], 'groupcache; fwd=miss; detail=status')
  failure = 'throw'
  t.equal((await get('/feed')).status, 500, 'a throw past the window is a 500')
  t.equal((await get('/long')).body, long.body, 'a route with a longer window still answers stale')

  failure = 'none'
  const recovered = await get('/feed')
  t.equal(recovered.headers['cache-status'], STORED, 'a handler that answers again is stored')
  failure = 503
  t.match((await get('/feed')).headers['cache-status'], /^groupcache; hit; ttl=\d+$/, 'a fresh entry is a hit: the handler does not run')

  // After a soft bump, the previous generation answers a failing handler while the grace lasts.
  await app.api.bump('feed', {}, { grace: 30 })
  const soft = await get('/feed')
  t.equal(soft.status, 200)
  t.match(soft.body, /^feed v\d+$/, 'the previous generation answers')
  t.match(soft.headers['cache-status'], /^groupcache; fwd=stale; fwd-status=503; ttl=-\d+; detail=stale-if-error$/)
  t.clock.advance(31_000)
  t.equal((await get('/feed')).status, 503, 'after the grace, the error goes through')
})

t.test('Fastify: a stale answer keeps the headers set before the handler, merges Vary, adds CDN headers', async (t) => {
  const app = Fastify()
  await app.register(groupcache, { staleIfError: 60, cdn: true })
  app.addHook('onRequest', async (_request, reply) => {
    reply.header('x-preset', ['a', 'b'])
    reply.header('vary', 'Origin')
  })
  let failing = false
  app.get('/doc', { config: { cache: { group: 'doc', vary: ['accept-language'] } } }, async (_request, reply) => {
    if (failing) throw new Error('origin down (test)')
    reply.header('vary', 'Origin, Accept-Language')
    return 'doc v1'
  })
  t.teardown(() => app.close())
  t.equal((await app.inject('/doc')).headers['cache-status'], 'groupcache; fwd=miss; stored')
  await app.groupcache.bump('doc', {}, { grace: 30 })
  failing = true
  const stale = await app.inject('/doc')
  t.equal(stale.statusCode, 200)
  t.equal(stale.body, 'doc v1', 'the soft-bumped entry answers the failing handler')
  t.match(stale.headers['cache-status'], /^groupcache; fwd=stale; fwd-status=500; ttl=-\d+; detail=stale-if-error$/)
  t.same(stale.headers['x-preset'], ['a', 'b'], 'a header set before the handler is kept')
  t.equal(stale.headers.vary, 'Origin, Accept-Language', 'Vary merged')
  t.match(stale.headers['cache-groups'], /"gc\/doc"/, 'the CDN headers of the route')
  t.notMatch(String(stale.headers['cache-control']), /max-age|s-maxage/, 'not made cacheable for the CDN')
})

t.test('staleIfError must be a number of seconds, on the route and the plugin', async (t) => {
  const app = Fastify()
  await app.register(groupcache)
  t.throws(() => app.get('/x', { config: { cache: { staleIfError: -1 } } }, async () => 'x'), {
    code: 'GC_INVALID_OPTION',
    message: 'groupcache: route GET /x: option staleIfError must be a number of seconds (0 or more), got -1'
  })
  await app.close()
  const bad = Fastify()
  await t.rejects(async () => {
    await bad.register(groupcache, { staleIfError: '60' as unknown as number })
  }, { code: 'GC_INVALID_OPTION', message: /option staleIfError/ })
})
