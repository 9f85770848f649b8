import Fastify from 'fastify'
import t, { type Test } from 'tap'
import groupcache, { GroupcacheError, MemoryStore } from '../lib/index.js'

async function register(url: string, cache: unknown, method: 'GET' | 'POST' = 'GET') {
  const app = Fastify()
  await app.register(groupcache)
  app.route({ method, url, config: { cache: cache as never }, handler: async () => 'x' })
  return app
}

async function rejects(t: Test, url: string, cache: unknown, code: string, message: RegExp, method: 'GET' | 'POST' = 'GET') {
  const err = await register(url, cache, method).then(
    (app) => app.ready().then(() => undefined),
    (e: unknown) => e
  )
  t.type(err, GroupcacheError)
  t.match(err, { code, message })
}

t.test('a group naming a param the route lacks fails at registration, naming route, group and params', async (t) => {
  await rejects(t, '/users/:userId', { groups: ['user:id'] }, 'GC_UNKNOWN_PARAM', /route GET \/users\/:userId: groups: group user:id names param "id", which the route does not have \(it has: userId\)/)
  await rejects(t, '/posts', { group: ['a', 'b'] }, 'GC_UNKNOWN_PARAM', /names params "a", "b".*\(it has: no params\)/)
  await rejects(t, '/p/:x', { groups: [{ id: 'y' }] }, 'GC_UNKNOWN_PARAM', /group \{"id":"y"\} names param "y"/)
  await rejects(t, '/p/:x', { bumps: ['thing:y'] }, 'GC_UNKNOWN_PARAM', /bumps: group thing:y/, 'POST')
})

t.test('params of every Fastify pattern form are known', async (t) => {
  for (const [url, group] of [
    ['/files/*', 'file:*'],
    ['/a/:id?', 'a:id'],
    ['/r/:id(^\\d+)', 'r:id'],
    ['/m/:lat-:lng', 'm:lat:lng'],
    ['/d/:file.:ext', 'd:file:ext'],
    ['/e/::literal/:x', 'e:x']
  ] as const) {
    const app = await register(url, { groups: [group] })
    await t.resolves(Promise.resolve(app.ready()), `${url} with ${group}`)
    await app.close()
  }
})

t.test('malformed group definitions fail at registration', async (t) => {
  await rejects(t, '/x', { groups: [''] }, 'GC_INVALID_GROUP', /the group name is empty/)
  await rejects(t, '/x/:a', { groups: ['g:a:a'] }, 'GC_INVALID_GROUP', /param "a" is named twice/)
  await rejects(t, '/x/:a', { groups: ['g::a'] }, 'GC_INVALID_GROUP', /a param name is empty/)
  await rejects(t, '/x/:group', { groups: ['g:group'] }, 'GC_INVALID_GROUP', /cannot be called "group"/)
  await rejects(t, '/x', { groups: [[]] }, 'GC_INVALID_GROUP', /at least one param/)
  await rejects(t, '/x', { groups: [[1]] }, 'GC_INVALID_GROUP', /param names \(strings\), got number/)
  await rejects(t, '/x', { groups: [{}] }, 'GC_INVALID_GROUP', /at least one key/)
  await rejects(t, '/x', { groups: [{ a: 1 }] }, 'GC_INVALID_GROUP', /remap value for "a" must be a param name, got number/)
  await rejects(t, '/x', { groups: [42] }, 'GC_INVALID_GROUP', /route GET \/x: groups: group 42: must be a string, a list of params, a remap object or a function/)
  await rejects(t, '/x', { groups: [null] }, 'GC_INVALID_GROUP', /got null/)
})

t.test('bad route options fail at registration, naming the option', async (t) => {
  await rejects(t, '/x', { grups: ['a'] }, 'GC_INVALID_OPTION', /unknown cache option "grups"/)
  await rejects(t, '/x', { group: 'a', groups: ['b'] }, 'GC_INVALID_OPTION', /either "group" or "groups"/)
  await rejects(t, '/x', { groups: 'a' }, 'GC_INVALID_OPTION', /option groups must be an array/)
  await rejects(t, '/x', { bumps: 'a' }, 'GC_INVALID_OPTION', /option bumps must be an array/)
  await rejects(t, '/x', { ttl: 0 }, 'GC_INVALID_OPTION', /route GET \/x: option ttl must be a positive number, got 0/)
  await rejects(t, '/x', { ttl: '60' }, 'GC_INVALID_OPTION', /option ttl/)
  await rejects(t, '/x', { maxEntryBytes: -1 }, 'GC_INVALID_OPTION', /option maxEntryBytes/)
  await rejects(t, '/x', { statuses: [200, 1000] }, 'GC_INVALID_OPTION', /option statuses/)
  await rejects(t, '/x', { vary: 'accept' }, 'GC_INVALID_OPTION', /option vary must be an array/)
  await rejects(t, '/x', { query: [1] }, 'GC_INVALID_OPTION', /option query/)
  await rejects(t, '/x', { authorization: 'yes' }, 'GC_INVALID_OPTION', /option authorization must be a boolean/)
  await rejects(t, '/x', 'yes', 'GC_INVALID_OPTION', /cache config must be true or an object/)
  await rejects(t, '/x', { groups: ['a'] }, 'GC_INVALID_OPTION', /route POST \/x: only GET and HEAD responses are cached, so only "bumps" applies here \(got: groups\)/, 'POST')
})

t.test('bad plugin options fail at registration, naming the option', async (t) => {
  const cases: [unknown, RegExp][] = [
    [{ tll: 5 }, /unknown option "tll"/],
    [{ ttl: -5 }, /option ttl must be a positive number/],
    [{ timeout: 0 }, /option timeout/],
    [{ prefix: '' }, /option prefix/],
    [{ prefix: 'a b' }, /option prefix/],
    [{ prefix: 'gc:' }, /option prefix/],
    [{ statuses: 'all' }, /option statuses/],
    [{ maxEntryBytes: 0 }, /option maxEntryBytes/]
  ]
  for (const [options, message] of cases) {
    const app = Fastify()
    await t.rejects(Promise.resolve(app.register(groupcache, options as never).ready()), { code: 'GC_INVALID_OPTION', message }, JSON.stringify(options))
  }
  t.throws(() => new MemoryStore({ maxBytes: 0 }), { code: 'GC_INVALID_OPTION', message: /MemoryStore option maxBytes/ })
})

t.test('a route without config.cache gets no groupcache hooks', async (t) => {
  const app = Fastify()
  await app.register(groupcache)
  app.get('/plain', async () => 'plain')
  app.get('/bumps-only', { config: { cache: { bumps: ['x'] } } }, async () => 'b')
  app.get('/cached', { config: { cache: true } }, async () => 'c')
  await app.ready()
  const plain = await app.inject('/plain')
  t.equal(plain.headers['cache-status'], undefined)
  t.equal((await app.inject('/bumps-only')).headers['cache-status'], undefined, 'bumps alone do not cache')
  t.equal((await app.inject('/cached')).headers['cache-status'], 'groupcache; fwd=miss; stored')
  t.equal(app.groupcache.stats().misses, 1, 'only the cached route was looked up')
  await app.close()
})

t.test('a cached route answering several methods bypasses the cache for the others', async (t) => {
  const app = Fastify()
  await app.register(groupcache)
  let runs = 0
  app.route({ method: ['GET', 'POST'], url: '/both', config: { cache: true }, handler: async () => `run ${++runs}` })
  await app.ready()
  await app.inject('/both')
  const post = await app.inject({ method: 'POST', url: '/both' })
  t.equal(post.headers['cache-status'], 'groupcache; fwd=bypass; detail=method')
  t.equal(post.body, 'run 2')
  t.match((await app.inject('/both')).headers['cache-status'], /hit/)
  await app.close()
})

t.test('changing a route’s cache config never serves entries stored under the old one', async (t) => {
  const store = new MemoryStore()
  const build = async (cache: object, body: string) => {
    const app = Fastify()
    await app.register(groupcache, { store })
    app.get('/users/:userId', { config: { cache } }, async () => body)
    await app.ready()
    return app
  }
  const v1 = await build({ groups: ['user:userId'] }, 'old config')
  t.equal((await v1.inject('/users/1')).headers['cache-status'], 'groupcache; fwd=miss; stored')
  const same = await build({ groups: ['user:userId'] }, 'same config')
  t.equal((await same.inject('/users/1')).body, 'old config', 'the same config shares the entry')
  const v2 = await build({ groups: ['user:userId', 'users'] }, 'new config')
  t.equal((await v2.inject('/users/1')).body, 'new config')
  const v3 = await build({ groups: ['user:userId'], ttl: 30 }, 'new ttl')
  t.equal((await v3.inject('/users/1')).body, 'new ttl')
  await v3.close()
})

t.test('bumpGroup with a missing value is a TypeError at the call; with explicit values it works anywhere', async (t) => {
  const app = Fastify()
  await app.register(groupcache)
  app.post('/x', async (_req, reply) => {
    reply.bumpGroup('user:userId')
    return 'unreachable'
  })
  app.post('/y', async (_req, reply) => reply.bumpGroup('user:userId', { userId: 3 }).bumpGroup(['a', 'b'], { a: 1, b: 2 }).send('chained'))
  await app.ready()
  const x = await app.inject({ method: 'POST', url: '/x' })
  t.equal(x.statusCode, 500)
  t.match(JSON.parse(x.body).message, /group user:userId: no value for param "userId" \(values given: none\)/)
  const y = await app.inject({ method: 'POST', url: '/y' })
  t.equal(y.body, 'chained')
  t.equal(app.groupcache.stats().bumps, 2)
  await t.rejects(app.groupcache.bump('user:userId', {}), { name: 'GroupcacheTypeError', code: 'GC_MISSING_VALUE' })
  await app.close()
})

t.test('an optional param that is absent counts as the empty string', async (t) => {
  const app = Fastify()
  await app.register(groupcache)
  let runs = 0
  app.get('/list/:page?', { config: { cache: { groups: ['list:page'] } } }, async () => `run ${++runs}`)
  app.get('/shelf/:cat/:page?', { config: { cache: { groups: ['shelf:cat', 'page:page'] } } }, async (request) => `${(request.params as { cat: string }).cat} run ${++runs}`)
  await app.ready()
  t.equal((await app.inject('/list')).headers['cache-status'], 'groupcache; fwd=miss; stored')
  t.match((await app.inject('/list')).headers['cache-status'], /hit/)
  await app.groupcache.bump('list:page', { page: '' })
  t.equal((await app.inject('/list')).body, 'run 2')
  // Beside a param that is given: that one keeps its value.
  t.equal((await app.inject('/shelf/a')).body, 'a run 3')
  t.equal((await app.inject('/shelf/b')).body, 'b run 4', 'another value of the given param is another entry')
  t.equal((await app.inject('/shelf/a')).body, 'a run 3')
  await app.groupcache.bump('shelf:cat', { cat: 'a' })
  t.equal((await app.inject('/shelf/a')).body, 'a run 5', 'its group reached by the value given')
  t.equal((await app.inject('/shelf/b')).body, 'b run 4')
  await app.groupcache.bump('page:page', { page: '' })
  t.equal((await app.inject('/shelf/b')).body, 'b run 6', 'the absent one reached as the empty string')
  await app.close()
})

t.test('a function group that throws bypasses the cache for that request', async (t) => {
  const warnings: unknown[] = []
  const app = Fastify()
  await app.register(groupcache, { logger: { warn: (o, msg) => warnings.push([o, msg]), error: () => {} } })
  app.get('/tenant', { config: { cache: { group: (_v, req: { headers: Record<string, string> }) => ({ tenant: req.headers['x-tenant'] as string }) } } }, async () => 'ok')
  await app.ready()
  const r = await app.inject('/tenant')
  t.equal(r.statusCode, 200)
  t.equal(r.headers['cache-status'], 'groupcache; fwd=bypass; detail=group-error')
  t.equal(warnings.length, 1)
  t.match(warnings[0], [{ err: Error, route: 'GET /tenant' }, /^groupcache: a group could not be resolved for this request; served uncached$/], 'logged with the error and the route')
  t.equal((await app.inject({ url: '/tenant', headers: { 'x-tenant': 'acme' } })).headers['cache-status'], 'groupcache; fwd=miss; stored')
  await app.close()
})
