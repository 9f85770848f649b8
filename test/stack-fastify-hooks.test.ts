import helmet from '@fastify/helmet'
import rateLimit from '@fastify/rate-limit'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import t from 'tap'
import groupcache from '../lib/index.js'
import { until } from './helpers/faulty-store.js'
import { gate } from './helpers/matrix.js'

/** Both registration orders of groupcache and another plugin: where order can matter, each is tested. */
const ORDERS = ['groupcache first', 'groupcache last'] as const

async function build(order: (typeof ORDERS)[number], other: (app: FastifyInstance) => PromiseLike<unknown>, options: object = {}): Promise<FastifyInstance> {
  const app = Fastify()
  if (order === 'groupcache first') {
    await app.register(groupcache, options)
    await other(app)
  } else {
    await other(app)
    await app.register(groupcache, options)
  }
  return app
}

/** A members-only check as apps write it: a preHandler reading a cookie. */
async function requireMember(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (request.headers.cookie !== 'member=yes') await reply.code(401).send({ error: 'members only' })
}

/** An auth plugin that protects every route declaring config.auth, through onRoute (as auth plugins do). */
const authPlugin = fp(async (app: FastifyInstance) => {
  app.addHook('onRoute', (route) => {
    if ((route.config as { auth?: boolean } | undefined)?.auth !== true) return
    const existing = route.preHandler
    route.preHandler = [...(existing === undefined ? [] : Array.isArray(existing) ? existing : [existing]), requireMember]
  })
})

for (const order of ORDERS) {
  t.test(`an auth preHandler runs on hits (${order})`, async (t) => {
    const app = await build(order, async () => {})
    t.teardown(() => app.close())
    let runs = 0
    app.get('/members', { preHandler: requireMember, config: { cache: true } }, async () => `members page ${++runs}`)
    const member = { cookie: 'member=yes' }
    t.equal((await app.inject({ url: '/members', headers: member })).headers['cache-status'], 'groupcache; fwd=miss; stored')
    t.match((await app.inject({ url: '/members', headers: member })).headers['cache-status'], /hit/, 'members get hits')
    const anonymous = await app.inject('/members')
    t.equal(anonymous.statusCode, 401, 'an anonymous request never gets the cached members page')
    t.notMatch(anonymous.body, /members page/)
    t.equal(anonymous.headers['cache-status'], undefined, 'it never reached the cache')
    t.equal(runs, 1)
  })

  t.test(`an auth plugin whose onRoute adds a preHandler protects hits (${order})`, async (t) => {
    const app = await build(order, (a) => a.register(authPlugin))
    t.teardown(() => app.close())
    app.get('/secret', { config: { cache: true, auth: true } as never }, async () => 'the secret')
    t.equal((await app.inject({ url: '/secret', headers: { cookie: 'member=yes' } })).body, 'the secret')
    t.match((await app.inject({ url: '/secret', headers: { cookie: 'member=yes' } })).headers['cache-status'], /hit/)
    t.equal((await app.inject('/secret')).statusCode, 401)
  })

  t.test(`@fastify/rate-limit counts hits and its headers are live on hits (${order})`, async (t) => {
    const app = await build(order, (a) => a.register(rateLimit, { max: 3, timeWindow: 60_000 }))
    t.teardown(() => app.close())
    app.get('/limited', { config: { cache: true } }, async () => 'limited')
    const answers = []
    for (let i = 0; i < 5; i++) answers.push(await app.inject('/limited'))
    t.same(answers.map((r) => r.statusCode), [200, 200, 200, 429, 429], 'the 4th request is refused although it would be a hit')
    t.same(answers.slice(0, 3).map((r) => r.headers['x-ratelimit-remaining']), ['2', '1', '0'], 'never the stored request’s value')
    t.match(answers[2]?.headers['cache-status'], /hit/)
  })

  t.test(`@fastify/helmet headers are set on hits and never stored (${order})`, async (t) => {
    const app = await build(order, (a) => a.register(helmet, { contentSecurityPolicy: { directives: { defaultSrc: ["'self'"] } } }))
    t.teardown(() => app.close())
    app.get('/page', { config: { cache: true } }, async (_req, reply) => reply.type('text/html').send('<p>page</p>'))
    const miss = await app.inject('/page')
    const hit = await app.inject('/page')
    t.match(hit.headers['cache-status'], /hit/)
    t.equal(hit.headers['x-content-type-options'], 'nosniff')
    t.equal(hit.headers['content-security-policy'], miss.headers['content-security-policy'])
    t.equal(hit.headers['content-type'], miss.headers['content-type'], 'the handler’s own headers are stored')
    t.match(hit.headers['content-type'], /^text\/html/)
  })
}

t.test('a preValidation hook and schema validation run before a hit', async (t) => {
  const app = Fastify()
  await app.register(groupcache)
  t.teardown(() => app.close())
  let checked = 0
  app.get(
    '/items',
    {
      schema: { querystring: { type: 'object', properties: { page: { type: 'integer', minimum: 1 } } } },
      preValidation: async () => {
        checked++
      },
      config: { cache: true }
    },
    async () => 'items'
  )
  await app.inject('/items?page=1')
  t.match((await app.inject('/items?page=1')).headers['cache-status'], /hit/)
  t.equal((await app.inject('/items?page=0')).statusCode, 400, 'an invalid query is refused before the cache')
  t.equal(checked, 3)
})

t.test('lookupAt: onRequest answers hits before later hooks (the documented trade-off)', async (t) => {
  const app = Fastify()
  await app.register(groupcache, { lookupAt: 'onRequest' })
  t.teardown(() => app.close())
  let runs = 0
  const handled: string[] = []
  app.get('/fast', { preHandler: async () => void handled.push('preHandler'), config: { cache: true } }, async () => `fast ${++runs}`)
  t.equal((await app.inject('/fast')).headers['cache-status'], 'groupcache; fwd=miss; stored')
  const hit = await app.inject('/fast')
  t.match(hit.headers['cache-status'], /hit/)
  t.equal(hit.body, 'fast 1')
  t.same(handled, ['preHandler'], 'the hit skipped the preHandler')
  await t.rejects(
    (async () => {
      const bad = Fastify()
      await bad.register(groupcache, { lookupAt: 'preHandler' } as never)
    })(),
    { code: 'GC_INVALID_OPTION', message: /option lookupAt must be 'handler' or 'onRequest', got "preHandler"/ }
  )
})

t.test('lookupAt: onRequest: a miss answered by a later hook (401) releases the requests waiting on it', { timeout: 20_000 }, async (t) => {
  const app = Fastify()
  await app.register(groupcache, { lookupAt: 'onRequest', coalesceTimeout: 600_000 })
  t.teardown(() => app.close())
  const rejecting = gate()
  let waiting = 0
  let runs = 0
  app.get(
    '/members',
    {
      preHandler: async (request, reply) => {
        if (request.headers.cookie === 'member=yes') return
        waiting++
        await rejecting.wait
        await reply.code(401).send('members only')
      },
      config: { cache: true }
    },
    async () => `members ${++runs}`
  )
  const anonymous = app.inject('/members')
  await until(() => waiting === 1, 'the anonymous leader to reach its preHandler')
  const member = app.inject({ url: '/members', headers: { cookie: 'member=yes' } })
  await until(() => app.groupcache.stats().misses === 2, 'the member to wait on the leader')
  rejecting.open()
  t.equal((await anonymous).statusCode, 401)
  const served = await member
  t.equal(served.statusCode, 200, 'released when the leader was answered by the hook, not after coalesceTimeout')
  t.equal(served.body, 'members 1')
})
