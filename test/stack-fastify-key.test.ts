import { connect, constants } from 'node:http2'
import Fastify from 'fastify'
import t from 'tap'
import groupcache, { GroupcacheError } from '../lib/index.js'
import { gate } from './helpers/matrix.js'
import { until } from './helpers/faulty-store.js'

/** The real setImmediate, taken before a mocked clock replaces it. */
const realImmediate = setImmediate
const tick = () => new Promise((resolve) => realImmediate(resolve))

/** One HTTP/2 (h2c) request with the given :authority. */
function h2Get(base: string, authority: string, path: string): Promise<{ status: number; body: string; cacheStatus: string | undefined }> {
  return new Promise((resolve, reject) => {
    const client = connect(base)
    client.on('error', reject)
    const req = client.request({ [constants.HTTP2_HEADER_PATH]: path, [constants.HTTP2_HEADER_AUTHORITY]: authority })
    let status = 0
    let cacheStatus: string | undefined
    const chunks: Buffer[] = []
    req.on('response', (headers) => {
      status = Number(headers[':status'])
      cacheStatus = headers['cache-status'] as string | undefined
    })
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      client.close()
      resolve({ status, body: Buffer.concat(chunks).toString(), cacheStatus })
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('over HTTP/2, virtual hosts (:authority) never share entries', async (t) => {
  const app = Fastify({ http2: true })
  await app.register(groupcache)
  app.get('/home', { config: { cache: true } }, async (request) => `home of ${request.host}`)
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  t.equal((await h2Get(base, 'a.example', '/home')).body, 'home of a.example')
  const b = await h2Get(base, 'b.example', '/home')
  t.equal(b.body, 'home of b.example', 'another authority, another entry')
  t.equal(b.cacheStatus, 'groupcache; fwd=miss; stored')
  const again = await h2Get(base, 'A.EXAMPLE', '/home')
  t.match(again.cacheStatus, /hit/, 'the host is compared lower-cased')
  t.equal(again.body, 'home of a.example')
})

t.test('behind a trusted proxy, tenants (X-Forwarded-Host) never share entries', async (t) => {
  const app = Fastify({ trustProxy: true })
  await app.register(groupcache)
  t.teardown(() => app.close())
  app.get('/home', { config: { cache: true } }, async (request) => `home of ${request.host}`)
  const via = (tenant: string) => app.inject({ url: '/home', headers: { host: 'origin.internal', 'x-forwarded-host': tenant } })
  t.equal((await via('tenant-a.example')).body, 'home of tenant-a.example')
  t.equal((await via('tenant-b.example')).body, 'home of tenant-b.example')
  t.match((await via('tenant-a.example')).headers['cache-status'], /hit/)
  t.equal((await via('tenant-a.example')).body, 'home of tenant-a.example')
})

t.test('the query is keyed as the handler sees it: malformed percent-encoding cannot poison another query', async (t) => {
  const app = Fastify()
  await app.register(groupcache)
  t.teardown(() => app.close())
  app.get('/search', { config: { cache: true } }, async (request) => JSON.stringify(request.query))
  const pairs = [
    ['/search?q=%zz+a', '/search?q=%25zz%2Ba'],
    ['/search?q=a+b', '/search?q=a%2Bb'],
    ['/search?a=1&a=2', '/search?a=2&a=1']
  ]
  for (const [first, second] of pairs) {
    const one = await app.inject(first as string)
    const two = await app.inject(second as string)
    t.not(one.body, two.body, `${first} and ${second} are seen differently by the handler`)
    t.equal(two.headers['cache-status'], 'groupcache; fwd=miss; stored', `so ${second} is its own entry`)
    t.equal((await app.inject(first as string)).body, one.body)
  }
  await app.inject('/search?b=1&a=2')
  t.match((await app.inject('/search?a=2&b=1')).headers['cache-status'], /hit/, 'the same parsed query in another order shares the entry')
})

t.test('routes that differ only by constraints never share entries', async (t) => {
  const app = Fastify()
  await app.register(groupcache)
  t.teardown(() => app.close())
  app.get('/api', { constraints: { version: '1.0.0' }, config: { cache: true } }, async () => 'api v1')
  app.get('/api', { constraints: { version: '2.0.0' }, config: { cache: true } }, async () => 'api v2')
  app.get('/site', { constraints: { host: 'a.example' }, config: { cache: true } }, async () => 'site a')
  app.get('/site', { constraints: { host: /^b\./ }, config: { cache: true } }, async () => 'site b')
  t.equal((await app.inject({ url: '/api', headers: { 'accept-version': '1.x' } })).body, 'api v1')
  const v2 = await app.inject({ url: '/api', headers: { 'accept-version': '2.x' } })
  t.equal(v2.body, 'api v2')
  t.equal(v2.headers['cache-status'], 'groupcache; fwd=miss; stored')
  t.equal((await app.inject({ url: '/api', headers: { 'accept-version': '1.0.0' } })).body, 'api v1')
  t.equal((await app.inject({ url: '/site', headers: { host: 'a.example' } })).body, 'site a')
  t.equal((await app.inject({ url: '/site', headers: { host: 'b.example' } })).body, 'site b')
})

t.test('a stored 404 never answers If-None-Match with 304', async (t) => {
  const app = Fastify()
  await app.register(groupcache)
  t.teardown(() => app.close())
  app.get('/gone', { config: { cache: { statuses: [200, 404] } } }, async (_req, reply) => reply.code(404).send('gone'))
  const miss = await app.inject('/gone')
  const tag = miss.headers.etag as string
  t.ok(tag)
  const conditional = await app.inject({ url: '/gone', headers: { 'if-none-match': tag } })
  t.match(conditional.headers['cache-status'], /hit/)
  t.equal(conditional.statusCode, 404, 'preconditions apply to 2xx only')
  t.equal(conditional.body, 'gone')
  t.equal((await app.inject({ url: '/gone', headers: { 'if-none-match': '*' } })).statusCode, 404)
})

t.test('app.register(groupcache) without await: a cached route added meanwhile says so and logs once', async (t) => {
  const errors: unknown[] = []
  const app = Fastify()
  void app.register(groupcache, { logger: { warn: () => {}, error: (o) => errors.push(o) } })
  app.get('/early', { config: { cache: true } }, async () => 'early')
  app.get('/plain', async () => 'plain')
  await app.ready()
  t.teardown(() => app.close())
  const first = await app.inject('/early')
  t.equal(first.body, 'early')
  t.equal(first.headers['cache-status'], 'groupcache; fwd=bypass; detail=registered-before-plugin')
  await app.inject('/early')
  t.equal(errors.length, 1, 'logged once per route')
  t.match(errors[0], { route: 'GET /early' })
  t.equal((await app.inject('/plain')).headers['cache-status'], undefined, 'routes without config.cache are left alone')
  app.close()

  const awaited = Fastify()
  await awaited.register(groupcache)
  awaited.get('/late', { config: { cache: true } }, async () => 'late')
  t.equal((await awaited.inject('/late')).headers['cache-status'], 'groupcache; fwd=miss; stored', 'awaited: cached')
  await awaited.close()
})

t.test('store is checked at registration: {} or a URL string is an error naming option store', async (t) => {
  for (const [store, message] of [
    [{}, /option store must be a Store .* got an object without lookup, set, delete, bump, close/],
    ['redis://127.0.0.1:6380', /option store must be a Store .* got the string "redis:\/\/127.0.0.1:6380" \(for a Redis URL use new RedisStore\(\{ url \}\)\)/],
    [null, /got null/],
    [42, /got a number/]
  ] as const) {
    const app = Fastify()
    const err = await Promise.resolve(app.register(groupcache, { store: store as never }).ready()).then(
      () => undefined,
      (e: unknown) => e
    )
    t.type(err, GroupcacheError)
    t.match(err, { code: 'GC_INVALID_OPTION', message })
  }
})

t.test('a request waits for an identical request’s handler at most coalesceTimeout, then runs its own', async (t) => {
  const app = Fastify()
  await app.register(groupcache, { coalesceTimeout: 50 })
  t.teardown(() => app.close())
  const hung = gate()
  let runs = 0
  app.get('/slow', { config: { cache: true } }, async () => {
    const mine = ++runs
    if (mine === 1) await hung.wait
    return `run ${mine}`
  })
  const leader = app.inject('/slow')
  await until(() => runs === 1, 'the leader’s handler to start')
  const follower = await app.inject('/slow')
  t.equal(follower.body, 'run 2', 'the follower gave up waiting and ran its own handler')
  t.equal(follower.headers['cache-status'], 'groupcache; fwd=miss; stored')
  hung.open()
  t.equal((await leader).body, 'run 1')
  await t.rejects(
    (async () => {
      const bad = Fastify()
      await bad.register(groupcache, { coalesceTimeout: 0 })
    })(),
    { code: 'GC_INVALID_OPTION', message: /option coalesceTimeout must be a positive number/ }
  )
})

t.test('a stale hit under a second past expiry reports a negative ttl', async (t) => {
  const app = Fastify()
  await app.register(groupcache)
  t.teardown(() => app.close())
  const hung = gate()
  let runs = 0
  app.get('/news', { config: { cache: { ttl: 1, staleWhileRevalidate: 30 } } }, async () => {
    const mine = ++runs
    if (mine === 2) await hung.wait
    return `news ${mine}`
  })
  t.clock.enter()
  // Immediates are mocked too: drive requests by moving the clock a millisecond at a time.
  const drive = async (done: () => boolean) => {
    for (let i = 0; i < 200 && !done(); i++) {
      t.clock.advance(1)
      await tick()
    }
  }
  const settle = async <T>(promise: Promise<T>): Promise<T> => {
    let finished = false
    void promise.then(() => (finished = true))
    await drive(() => finished)
    return promise
  }
  await settle(app.inject('/news'))
  t.clock.advance(1400)
  const revalidating = app.inject('/news')
  await drive(() => runs === 2)
  t.equal(runs, 2, 'the revalidation started')
  const stale = await settle(app.inject('/news'))
  t.equal(stale.body, 'news 1')
  t.equal(stale.headers['cache-status'], 'groupcache; hit; ttl=-1', 'under a second past expiry is ttl=-1, never ttl=0')
  hung.open()
  t.equal((await settle(revalidating)).body, 'news 2')
})

t.test('a route learns at most 8 Vary headers; a response naming more is never stored, and it is logged', async (t) => {
  const warnings: unknown[] = []
  const app = Fastify()
  await app.register(groupcache, { logger: { warn: (o) => warnings.push(o), error: () => {} } })
  t.teardown(() => app.close())
  const names = Array.from({ length: 9 }, (_, i) => `x-v${i}`)
  app.get('/wide', { config: { cache: true } }, async (_req, reply) => reply.header('vary', names.join(', ')).send('wide'))
  for (let i = 0; i < 3; i++) t.equal((await app.inject('/wide')).headers['cache-status'], 'groupcache; fwd=miss; detail=vary')
  t.ok(warnings.length >= 1)
  t.match(warnings[0], { route: 'GET /wide', vary: 'x-v8' })
})

t.test('lookupAt: onRequest still says why it bypassed', async (t) => {
  const app = Fastify()
  await app.register(groupcache, { lookupAt: 'onRequest' })
  t.teardown(() => app.close())
  app.get('/p', { config: { cache: true } }, async () => 'p')
  const r = await app.inject({ url: '/p', headers: { authorization: 'Bearer x' } })
  t.equal(r.headers['cache-status'], 'groupcache; fwd=bypass; detail=authorization')
  t.equal(r.body, 'p')
})
