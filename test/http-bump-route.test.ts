import express from 'express'
import Fastify from 'fastify'
import t from 'tap'
import groupcache, { MemoryStore } from '../lib/index.js'
import { expressCache } from '../lib/express.js'
import { listenExpress } from './helpers/express-stack.js'

/**
 * bumpRoute() bumps what a cached route of this cache depends on, or is a
 * GroupcacheTypeError naming the pattern or the param at fault: a bump that
 * reaches no entry is a mistake, never a silent `true`. Fastify routes are
 * known at onRoute, Express route-table routes at construction, Express
 * gc.route() routes at their first request (until then, a pattern not known
 * yet is accepted: it may be one of them, and it has no entries to miss).
 */

const STORED = 'groupcache; fwd=miss; stored'

t.test('fastify: patterns and params are checked against the cached routes', async (t) => {
  const app = Fastify()
  await app.register(groupcache, { store: new MemoryStore() })
  let runs = 0
  app.get('/users/:userId', { config: { cache: { groups: ['user:userId'] } } }, async () => `run ${++runs}`)
  app.get('/v/:userId/:tab', { config: { cache: true } }, async () => `run ${++runs}`)
  app.route({ method: ['GET', 'HEAD'], url: '/about', config: { cache: true }, handler: async () => 'about' })
  app.post('/posts', { config: { cache: { bumps: ['posts'] } } }, async () => 'posted')
  app.get('/plain', async () => 'plain')
  // One pattern, two routes told apart by a constraint, each with its own groups.
  app.get('/c', { constraints: { version: '1.0.0' }, config: { cache: { group: 'c1' } } }, async () => 'c1')
  app.get('/c', { constraints: { version: '2.0.0' }, config: { cache: { group: 'c2' } } }, async () => 'c2')
  // One of them without groups: that one has view groups, so params are accepted.
  app.get('/d', { constraints: { version: '1.0.0' }, config: { cache: { group: 'd1' } } }, async () => 'd1')
  app.get('/d', { constraints: { version: '2.0.0' }, config: { cache: true } }, async () => 'd2')
  await app.ready()
  const api = app.groupcache
  await t.rejects(api.bumpRoute('/c', {}), { code: 'GC_INVALID_VALUE', message: /^bumpRoute: route \/c declares its groups \(c1, c2\)/ }, 'every route of the pattern named')
  t.equal(await api.bumpRoute('/d', {}), true, 'a pattern one of whose routes has view groups')

  await t.rejects(api.bumpRoute('/nope/:x'), { name: 'TypeError', code: 'GC_INVALID_VALUE', message: /bumpRoute: no cached route of this cache has the pattern "\/nope\/:x"/ })
  await t.rejects(api.bumpRoute('/posts'), { code: 'GC_INVALID_VALUE' }, 'a route that only declares bumps is not cached')
  await t.rejects(api.bumpRoute('/plain'), { code: 'GC_INVALID_VALUE' }, 'an uncached route')
  await t.rejects(api.bumpRoute('/users/:userId', { userId: 1 }), {
    name: 'TypeError',
    code: 'GC_INVALID_VALUE',
    message: 'bumpRoute: route /users/:userId declares its groups (user:userId), so it has no view group to bump with params: bump one of its groups, or its whole route generation with bumpRoute("/users/:userId")'
  })
  await t.rejects(api.bumpRoute('/v/:userId/:tab', { id: 1, userId: 1, tab: 'a' }), { name: 'TypeError', code: 'GC_UNKNOWN_PARAM', message: 'bumpRoute: route /v/:userId/:tab has no param "id" (it has: userId, tab)' })
  await t.rejects(api.bumpRoute('/about', { id: 1 }), { code: 'GC_UNKNOWN_PARAM', message: /has no param "id" \(it has: no params\)/ })
  await t.rejects(api.bumpRoute('/v/:userId/:tab', { userId: 1 }), { code: 'GC_MISSING_VALUE', message: /route \/v\/:userId\/:tab has param "tab", missing from the params given/ })
  await t.rejects(api.bumpRoute('/v/:userId/:tab', { userId: 1, tab: 'a', id: 2, page: 3 }), {
    code: 'GC_UNKNOWN_PARAM',
    message: 'bumpRoute: route /v/:userId/:tab has no param "id", "page" (it has: userId, tab)'
  })
  await t.rejects(api.bumpRoute('/v/:userId', { userId: 1 }), { code: 'GC_INVALID_VALUE', message: /no cached route of this cache has the pattern "\/v\/:userId"/ })
  await t.rejects(api.bumpRoute('/v/:userId/:tab', {}), { code: 'GC_MISSING_VALUE', message: /route \/v\/:userId\/:tab has param "userId", "tab", missing/ })
  await t.rejects(api.bumpRoute('/v/:userId/:tab', { userId: {} as never, tab: 'a' }), {
    code: 'GC_INVALID_VALUE',
    message: 'group view group of /v/:userId/:tab: value of "userId" must be a string, number, boolean or bigint, got an object'
  })
  await t.rejects(api.bumpRoute(42 as never), { code: 'GC_INVALID_VALUE', message: 'bumpRoute: the URL pattern must be a non-empty string, got 42' })
  await t.rejects(api.bumpRoute('/v/:userId/:tab', null as never), { code: 'GC_INVALID_VALUE', message: /the params of \/v\/:userId\/:tab must be an object, got null/ })
  await t.rejects(api.bumpRoute('/v/:userId/:tab', 'x' as never), { code: 'GC_INVALID_VALUE' })

  t.equal(await api.bumpRoute('/users/:userId'), true)
  t.equal(await api.bumpRoute('/about'), true, 'a pattern served by several methods')
  t.equal(await app.inject('/v/1/a').then((res) => res.headers['cache-status']), STORED)
  t.equal(await api.bumpRoute('/v/:userId/:tab', { userId: 1, tab: 'b' }), true)
  t.match(await app.inject('/v/1/a').then((res) => res.headers['cache-status']), /^groupcache; hit/, 'another view group')
  t.equal(await api.bumpRoute('/v/:userId/:tab', { userId: 1, tab: 'a' }), true)
  t.equal(await app.inject('/v/1/a').then((res) => res.headers['cache-status']), STORED, 'its view group moved')
  await app.close()
})

t.test('express: a route table is known at construction', async (t) => {
  const gc = expressCache({ store: new MemoryStore() })
  gc.middleware({ routes: { 'GET /users/:userId': { groups: ['user:userId'] }, 'GET /pages/:slug': true } })
  await t.rejects(gc.bumpRoute('/nope/:x'), { code: 'GC_INVALID_VALUE', message: /"\/nope\/:x"/ })
  await t.rejects(gc.bumpRoute('/users/:userId', { userId: 1 }), { code: 'GC_INVALID_VALUE', message: /route \/users\/:userId declares its groups/ })
  await t.rejects(gc.bumpRoute('/pages/:slug', { id: 1 }), { code: 'GC_UNKNOWN_PARAM', message: /route \/pages\/:slug has no param "id"/ })
  t.equal(await gc.bumpRoute('/pages/:slug', { slug: 'a' }), true)
  t.equal(await gc.bumpRoute('/users/:userId'), true)
  await gc.close()
})

t.test('express: gc.route() routes are known from their first request; until then any pattern is accepted', async (t) => {
  const gc = expressCache({ store: new MemoryStore() })
  const app = express()
  app.get('/users/:userId', gc.route({ groups: ['user:userId'] }), (req, res) => void res.send(`user ${req.params.userId}`))
  app.post('/posts', gc.route({ bumps: ['posts'] }), (_req, res) => void res.send('posted'))
  const get = await listenExpress(t, app, gc)
  t.equal(await gc.bumpRoute('/users/:userId', { id: 1 }), true, 'not known yet: accepted as it is')
  t.equal((await get('GET', '/users/1')).headers['cache-status'], STORED)
  await t.rejects(gc.bumpRoute('/users/:userId', { userId: 1 }), { code: 'GC_INVALID_VALUE', message: /route \/users\/:userId declares its groups \(user:userId\)/ })
  t.equal(await gc.bumpRoute('/users/:userId'), true)
  t.equal((await get('GET', '/users/1')).headers['cache-status'], STORED, 'the route generation moved')
  t.equal(await gc.bumpRoute('/nope/:x'), true, 'a gc.route() still unrequested may have any pattern')

  const bumpsOnly = expressCache({ store: new MemoryStore() })
  bumpsOnly.route({ bumps: ['posts'] })
  await t.rejects(bumpsOnly.bumpRoute('/nope/:x'), { code: 'GC_INVALID_VALUE' }, 'a gc.route() that only declares bumps caches no pattern')
  await bumpsOnly.close()
})
