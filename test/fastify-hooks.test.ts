import { request as httpRequest } from 'node:http'
import Fastify from 'fastify'
import t from 'tap'
import groupcache from '../lib/index.js'
import { fastifyRouteParams } from '../lib/fastify-params.js'
import { createHttpCache } from '../lib/http/options.js'
import { gate } from './helpers/matrix.js'
import { FaultyStore, until } from './helpers/faulty-store.js'

t.test('the params of Fastify patterns', async (t) => {
  t.same(fastifyRouteParams('/users/:userId/posts/:postId'), ['userId', 'postId'])
  t.same(fastifyRouteParams('/a/:id?'), ['id'])
  t.same(fastifyRouteParams('/r/:id(^\\d+)/:rest'), ['id', 'rest'])
  t.same(fastifyRouteParams('/r/:id(^(a|b)\\)$)x'), ['id'], 'nested and escaped parentheses')
  t.same(fastifyRouteParams('/r/:id(^\\d+'), ['id'], 'an unterminated regexp ends the pattern')
  t.same(fastifyRouteParams('/m/:lat-:lng.:fmt'), ['lat', 'lng', 'fmt'])
  t.same(fastifyRouteParams('/time/10::30/:x'), ['x'], ':: is an escaped colon')
  t.same(fastifyRouteParams('/files/*'), ['*'])
})

t.test('the route’s own hooks still run, whether given as a function or an array', async (t) => {
  const app = Fastify()
  await app.register(groupcache)
  const seen: string[] = []
  app.get('/own', {
    config: { cache: true },
    onRequest: async () => {
      seen.push('onRequest')
    },
    onSend: [
      async (_req, _reply, payload) => {
        seen.push('onSend')
        return payload
      }
    ]
  }, async () => 'own')
  await app.ready()
  t.equal((await app.inject('/own')).headers['cache-status'], 'groupcache; fwd=miss; stored')
  t.same(seen, ['onRequest', 'onSend'])
  await app.close()
})

t.test('bumpGroup after the response was sent applies at once', async (t) => {
  const app = Fastify()
  await app.register(groupcache)
  app.get('/late', async (_req, reply) => {
    reply.raw.on('finish', () => reply.bumpGroup('late'))
    return 'ok'
  })
  await app.ready()
  await app.inject('/late')
  await until(() => app.groupcache.stats().bumps === 1, 'the late bump')
  t.equal(app.groupcache.stats().bumps, 1)
  await app.close()
})

t.test('a leader whose client goes away releases the requests waiting on it', async (t) => {
  const app = Fastify()
  await app.register(groupcache)
  const release = gate()
  let runs = 0
  app.get('/slow', { config: { cache: true } }, async () => {
    const mine = ++runs
    await release.wait
    return `run ${mine}`
  })
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const url = new URL('/slow', base)
  const leader = httpRequest({ host: url.hostname, port: url.port, path: '/slow', agent: false })
  leader.on('error', () => {})
  leader.end()
  await until(() => runs === 1, 'the leader’s handler to start')
  const follower = fetch(url).then(async (r) => ({ status: r.status, cacheStatus: r.headers.get('cache-status'), body: await r.text() }))
  await until(() => app.groupcache.stats().misses === 2, 'the follower to wait on the leader')
  leader.destroy()
  await until(() => runs === 2, 'the follower to run its own handler')
  release.open()
  const got = await follower
  t.equal(got.status, 200)
  t.equal(got.body, 'run 2')
})

t.test('bumpRoute needs a pattern; options must be an object', async (t) => {
  const app = Fastify()
  await app.register(groupcache)
  await t.rejects(app.groupcache.bumpRoute(''), { code: 'GC_INVALID_VALUE', message: /URL pattern must be a non-empty string/ })
  await app.close()
  t.throws(() => createHttpCache(null as never, undefined), { code: 'GC_INVALID_OPTION', message: /options must be an object, got null/ })
})

t.test('a query with bad percent-encoding is keyed by its raw text', async (t) => {
  const app = Fastify()
  await app.register(groupcache)
  let runs = 0
  app.get('/q', { config: { cache: true } }, async () => `run ${++runs}`)
  await app.ready()
  t.equal((await app.inject('/q?a=%E0%A4%A')).headers['cache-status'], 'groupcache; fwd=miss; stored')
  t.match((await app.inject('/q?a=%E0%A4%A')).headers['cache-status'], /hit/)
  t.equal((await app.inject('/q?a=%E0%A4')).body, 'run 2')
  await app.close()
})

t.test('the hooks groupcache adds keep the route’s own onRequest and preHandler hooks, given as a function or an array', async (t) => {
  const app = Fastify()
  await app.register(groupcache, { lookupAt: 'onRequest' })
  const seen: string[] = []
  const mark = (what: string) => async () => {
    seen.push(what)
  }
  app.get('/fn', { config: { cache: true }, onRequest: mark('fn onRequest') }, async () => 'fn')
  app.get('/list', { config: { cache: true }, onRequest: [mark('list onRequest')] }, async () => 'list')
  app.post('/bump-fn', { config: { cache: { bumps: ['things'] } }, preHandler: mark('bump preHandler') }, async () => 'bumped')
  app.post('/bump-list', { config: { cache: { bumps: ['things'] } }, preHandler: [mark('bump list preHandler')] }, async () => 'bumped')
  await app.ready()
  for (const url of ['/fn', '/list']) {
    t.equal((await app.inject(url)).headers['cache-status'], 'groupcache; fwd=miss; stored', `${url}: a miss`)
    t.match((await app.inject(url)).headers['cache-status'], /^groupcache; hit; ttl=\d+$/, `${url}: a hit`)
  }
  t.equal((await app.inject({ method: 'POST', url: '/bump-fn' })).body, 'bumped')
  t.equal((await app.inject({ method: 'POST', url: '/bump-list' })).body, 'bumped')
  t.same(seen, ['fn onRequest', 'fn onRequest', 'list onRequest', 'list onRequest', 'bump preHandler', 'bump list preHandler'])
  t.equal(app.groupcache.stats().bumps, 2, 'each declared bump landed')
  await app.close()
})

t.test('a handler that answers through reply.send and returns nothing is waited for after an asynchronous lookup', async (t) => {
  // A store whose lookups answer asynchronously, as Redis does.
  const { MemoryStore } = await import('../lib/index.js')
  const store = new FaultyStore(new MemoryStore())
  const app = Fastify()
  await app.register(groupcache, { store })
  app.get('/later', { config: { cache: true } }, (_request, reply) => {
    setTimeout(() => reply.send('sent later'), 5)
  })
  await app.ready()
  const first = await app.inject('/later')
  t.equal(first.body, 'sent later')
  t.equal(first.headers['cache-status'], 'groupcache; fwd=miss; stored')
  t.match((await app.inject('/later')).headers['cache-status'], /^groupcache; hit; ttl=\d+$/)
  await app.close()
})
