import t from 'tap'
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
  let failure: 'none' | 'throw' | 503 = 'none'
  let version = 0
  const handler = () => {
    version++
    if (failure === 'throw') throw new Error('origin down (test)')
    if (failure === 503) return { status: 503, body: 'unavailable' }
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
