import Fastify from 'fastify'
import t from 'tap'
import groupcache, { type Logger } from '../lib/index.js'
import type { GroupcacheStats } from '../lib/observability/stats.js'
import express from 'express'
import { expressCache } from '../lib/express.js'
import { listenExpress } from './helpers/express-stack.js'
import { FaultyStore, until } from './helpers/faulty-store.js'
import { gate, matrix } from './helpers/matrix.js'
import { recordChannels } from './helpers/observe.js'

const record = recordChannels

const quiet: Logger = { warn() {}, error() {}, info() {} }
let counter = 0
const prefix = () => `obs${process.pid}x${++counter}`

void matrix(t, async (t, ctx) => {
  await t.test('hit, miss stored, miss not stored, bypass and bump are published, and counted per route', async (t) => {
    const p = prefix()
    const seen = record(t, p)
    const app = await ctx.app(
      [
        { method: 'GET', path: '/items/:id', cache: { groups: ['item:id'] }, handler: (req) => ({ body: { id: req.params.id } }) },
        { method: 'GET', path: '/cookie', cache: { group: 'c' }, handler: () => ({ headers: { 'set-cookie': 'sid=1' }, body: 'personal' }) },
        { method: 'PUT', path: '/items/:id', handler: (req) => ({ body: 'ok', bumps: [['item:id', req.params]] }) },
        { method: 'GET', path: '/pages/:slug', cache: true, handler: () => ({ body: 'page' }) }
      ],
      { prefix: p, logger: quiet }
    )
    const route = 'GET /items/:id'
    await app.request('GET', '/items/1')
    await until(() => seen.stores.length === 1, 'the store message')
    t.match(seen.lookups[0], { prefix: p, store: ctx.store.name, route, method: 'GET', url: '/items/1', groups: ['item:1'], outcome: 'miss' })
    t.equal(seen.lookups[0]!.async, ctx.store.name === 'redis', 'memory lookups answer synchronously; Redis ones at asyncEnd')
    t.ok(seen.lookups[0]!.duration! >= 0)
    t.match(seen.stores[0], { prefix: p, route, stored: true, ttl: 60 })
    t.ok((seen.stores[0] as { bytes: number }).bytes > '{"id":"1"}'.length, 'bytes written: body and headers')

    const hit = await app.request('GET', '/items/1')
    t.match(seen.lookups[1], { route, outcome: 'hit', cacheStatus: hit.headers['cache-status'] })

    await app.request('GET', '/items/1', { authorization: 'Bearer x' })
    t.match(seen.lookups[2], { route, outcome: 'bypass', detail: 'authorization' })

    await app.request('GET', '/cookie')
    await until(() => seen.stores.length === 2, 'the not-stored message')
    t.match(seen.lookups[3], { route: 'GET /cookie', outcome: 'miss', groups: ['c'] })
    t.same(seen.stores[1], { prefix: p, route: 'GET /cookie', stored: false, reason: 'set-cookie' })

    t.equal((await app.request('PUT', '/items/1')).status, 200)
    t.equal(seen.lookups.length, 4, 'an uncached route is not looked up')
    t.match(seen.bumps, [{ prefix: p, groups: ['item:1'], soft: false, retried: false }])
    t.equal(seen.bumps[0]!.keys.length, 1)
    await app.request('GET', '/items/1')
    t.match(seen.lookups[4], { route, outcome: 'miss' }, 'the bump orphaned the entry')
    await until(() => seen.stores.length === 3, 'the second store')

    const stats = app.api.stats() as GroupcacheStats
    t.match(stats.routes[route], { hits: 1, misses: 2, stored: 2, bypass: { authorization: 1 }, notStored: {}, hitRatio: 1 / 3 })
    t.match(stats.routes['GET /cookie'], { misses: 1, stored: 0, notStored: { 'set-cookie': 1 } })
    t.match(stats, { notStored: { 'set-cookie': 1 }, bypassed: { authorization: 1 }, breaker: 'closed', pendingBumps: 0, store: { kind: ctx.store.name } })
    if (ctx.store.name === 'memory') {
      t.equal(stats.store.versions, 5, 'the epoch, two route generations, item:1 and c')
      // Two entries were written for /items/1; the first may already have been deleted as replaced.
      t.ok(stats.store.entries! >= 1 && stats.store.entries! <= 2, 'entries held')
      t.ok(stats.store.bytes! > 0)
    }
    t.equal(await app.api.bumpRoute('/items/:id'), true)
    t.equal(await app.api.bumpRoute('/pages/:slug', { slug: 'a' }), true)
    t.same(seen.bumps.slice(1).map((b) => b.groups), [['route=/items/:id'], ['route=/pages/:slug,slug=a']], 'route generations and view groups are named too')
  })

  await t.test('a request answered with an identical request\'s response is published as collapsed', async (t) => {
    const p = prefix()
    const seen = record(t, p)
    const slow = gate()
    let runs = 0
    const app = await ctx.app([{ method: 'GET', path: '/slow', cache: { group: 's' }, handler: async () => (runs++, await slow.wait, { body: 'done' }) }], { prefix: p, logger: quiet })
    const first = app.request('GET', '/slow')
    await until(() => runs === 1, 'the leader')
    const second = app.request('GET', '/slow')
    // The engine's total counts a follower as it starts waiting (the trace answers it later).
    await until(() => app.api.stats().misses === 2, 'the follower to wait')
    slow.open()
    await Promise.all([first, second])
    await until(() => seen.lookups.length === 2, 'the follower\'s lookup')
    t.same(seen.lookups.map((l) => l.outcome), ['miss', 'collapsed'])
    t.equal(seen.lookups[1]!.async, true, 'a follower waits: its outcome comes at asyncEnd')
    t.match((app.api.stats() as GroupcacheStats).routes['GET /slow'], { misses: 1, collapsed: 1, hitRatio: 0 })
  })

  await t.test('store faults, failed writes and the breaker opening and closing are published', async (t) => {
    const p = prefix()
    const seen = record(t, p)
    const store = new FaultyStore(ctx.store.make())
    const release = gate()
    const app = await ctx.app(
      [
        { method: 'GET', path: '/items/:id', cache: { groups: ['item:id'] }, handler: (req) => ({ body: req.params.id }) },
        { method: 'GET', path: '/late', cache: { group: 'late' }, handler: async () => (await release.wait, { body: 'late' }) }
      ],
      { prefix: p, store, logger: quiet }
    )
    // A write that fails: the lookup went through, the store fails before the handler answers.
    const late = app.request('GET', '/late')
    await until(() => seen.lookups.length === 1, 'the lookup of /late')
    store.setFault('error')
    release.open()
    await late
    await until(() => seen.stores.length === 1, 'the not-stored message')
    t.same(seen.stores[0], { prefix: p, route: 'GET /late', stored: false, reason: 'store-error' })
    t.match(seen.faults[0], { prefix: p, what: 'write', route: 'GET /late', error: { message: 'store is down (test fault)' } })

    // Lookups that fail until the breaker opens.
    const statuses: number[] = []
    while (!seen.breaker.some((b) => b.to === 'open')) {
      statuses.push((await app.request('GET', '/items/1')).status)
      if (statuses.length > 20) break
    }
    t.ok(statuses.every((s) => s === 200), 'never a 5xx')
    t.match(seen.breaker[0], { prefix: p, from: 'closed', to: 'open' })
    const failed = seen.lookups.filter((l) => l.detail === 'store-error')
    t.ok(failed.length >= 1, 'store errors bypass the cache')
    t.match(failed[0], { route: 'GET /items/:id', outcome: 'bypass', cacheStatus: 'groupcache; fwd=bypass; detail=store-error' })
    t.equal(seen.lookupErrors.length, failed.length, 'each failed lookup published error on the trace')
    t.match(seen.lookupErrors[0], { error: { message: 'store is down (test fault)' } })
    t.match(seen.faults.slice(1), failed.map(() => ({ what: 'lookup', route: 'GET /items/:id' })))

    await app.request('GET', '/items/1')
    t.match(seen.lookups.at(-1), { outcome: 'bypass', detail: 'store-unavailable' }, 'open: the store is not called')
    const faultsWhileOpen = seen.faults.length

    store.setFault('none')
    // After its cool-down the breaker lets one request through as a probe; its success closes it.
    for (let tries = 0; seen.breaker.at(-1)?.to !== 'closed' && tries < 100; tries++) {
      await app.request('GET', '/items/1')
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    t.same(seen.breaker.map((b) => b.to), ['open', 'half-open', 'closed'])
    t.equal(seen.faults.length, faultsWhileOpen, 'refusals by the open breaker are not faults')
    t.equal((app.api.stats() as GroupcacheStats).breaker, 'closed')
    t.match((app.api.stats() as GroupcacheStats).routes['GET /items/:id']?.bypass, { 'store-error': failed.length, 'store-unavailable': Number })
  })
})

t.test('a stale entry served while its route revalidates, and a group that cannot be resolved, are published', async (t) => {
  const p = prefix()
  const seen = record(t, p)
  const app = Fastify()
  await app.register(groupcache, { prefix: p, logger: quiet })
  const slow = gate()
  let revalidating = false
  app.get('/news', { config: { cache: { group: 'news', ttl: 1, staleWhileRevalidate: 30 } } }, async () => {
    if (revalidating) await slow.wait
    return 'news'
  })
  app.get('/broken', { config: { cache: { group: () => { throw new Error('no tenant') } } } }, async () => 'uncached')
  app.get('/items/:id', { config: { cache: true } }, async () => 'item')
  t.teardown(() => app.close())

  await app.inject('/news')
  await new Promise((resolve) => setTimeout(resolve, 1100)) // past the 1 s ttl
  revalidating = true
  const leader = app.inject('/news')
  await until(() => seen.lookups.length === 2, 'the revalidating request')
  const stale = await app.inject('/news')
  slow.open()
  await leader
  t.match(seen.lookups.map((l) => l.outcome), ['miss', 'miss', 'stale'])
  t.match(seen.lookups[2], { cacheStatus: stale.headers['cache-status'] })
  t.match(stale.headers['cache-status'], /hit; ttl=-\d+$/)

  await app.inject('/broken')
  t.match(seen.lookups[3], { route: 'GET /broken', outcome: 'bypass', detail: 'group-error' })
  t.same(seen.lookups[3]?.groups, [], 'no names when the group throws')

  await app.inject('/items/7')
  t.same(seen.lookups[4]?.groups, ['id=7,route=/items/:id'], 'a route without groups depends on its view group: its pattern and params')
  t.match((app.groupcache.stats() as GroupcacheStats).routes, { 'GET /news': { hits: 0, stale: 1, misses: 2 }, 'GET /broken': { bypass: { 'group-error': 1 } } })
})

t.test('answers from a soft bump and from a handler past its time limit are published as stale, saying which', async (t) => {
  const p = prefix()
  const seen = record(t, p)
  const app = Fastify()
  await app.register(groupcache, { prefix: p, logger: quiet, staleIfError: 60, staleIfErrorTimeout: 0.05 })
  let held: ReturnType<typeof gate> | undefined
  let version = 0
  app.get('/feed', { config: { cache: { group: 'feed' } } }, async () => {
    const mine = ++version
    if (held !== undefined) await held.wait
    return `feed v${mine}`
  })
  t.teardown(() => app.close())
  await app.inject('/feed')
  await app.groupcache.bump('feed', {}, { grace: 30 })
  held = gate()
  const leader = app.inject('/feed')
  await until(() => seen.lookups.length === 2, 'the recomputing request')
  const soft = await app.inject('/feed')
  t.match(soft.headers['cache-status'], /detail=soft-bump$/)
  t.match(seen.lookups[2], { outcome: 'stale', detail: 'soft-bump', cacheStatus: soft.headers['cache-status'] }, 'an identical request during the recompute: the previous generation')
  const timedOut = await leader
  t.match(timedOut.headers['cache-status'], /detail=handler-timeout$/)
  const arriving = await app.inject('/feed')
  t.match(seen.lookups[3], { outcome: 'stale', detail: 'handler-timeout', cacheStatus: arriving.headers['cache-status'] }, 'a request arriving while the handler still runs past its limit')
  held.open()
})

t.test('option maxRouteStats bounds the per-route table, on both adapters; a bad value names the option', async (t) => {
  const fastify = Fastify()
  // Three rows: GET /a, Fastify's automatic HEAD /a (compiled, never requested: not listed), GET /b.
  await fastify.register(groupcache, { prefix: prefix(), logger: quiet, maxRouteStats: 3 })
  for (const name of ['a', 'b', 'c', 'd']) fastify.get(`/${name}`, { config: { cache: { group: name } } }, async () => name)
  t.teardown(() => fastify.close())
  for (const name of ['a', 'b', 'c', 'd']) await fastify.inject(`/${name}`)
  const routes = (fastify.groupcache.stats() as GroupcacheStats).routes
  t.same(Object.keys(routes).sort(), ['(other routes)', 'GET /a', 'GET /b'])
  t.equal(routes['(other routes)']!.misses, 2, 'GET /c and GET /d, counted together')

  const gc = expressCache({ prefix: prefix(), logger: quiet, maxRouteStats: 1 })
  const app = express()
  app.get('/x', gc.route({ group: 'x' }), (_req, res) => void res.send('x'))
  app.get('/y', gc.route({ group: 'y' }), (_req, res) => void res.send('y'))
  const request = await listenExpress(t, app, gc)
  await request('GET', '/x')
  await request('GET', '/y')
  t.same(Object.keys(gc.stats().routes).sort(), ['(other routes)', 'GET /x'])

  for (const bad of [0, 1.5, '10']) {
    const bare = Fastify()
    await t.rejects(async () => bare.register(groupcache, { maxRouteStats: bad as never }).ready(), { code: 'GC_INVALID_OPTION', message: /option maxRouteStats must be a positive integer/ })
    t.throws(() => expressCache({ maxRouteStats: bad as never }), { code: 'GC_INVALID_OPTION', message: /option maxRouteStats/ })
  }
})
