import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import express from 'express'
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import { fastlyPurger, groupcache, MemoryStore, type CdnPurger, type GroupcacheOptions, type GroupRequest, type GroupValues } from '../lib/index.js'
import { expressCache } from '../lib/express.js'
import { holdUntilDecided, type RawResponse } from '../lib/http/capture.js'
import { Edge } from '../lib/cdn/edge.js'
import { VENDORS, vendorKey, type Vendor } from '../lib/cdn/names.js'
import { adapters, type TestRoute } from './helpers/apps.js'
import { FaultyStore } from './helpers/faulty-store.js'
import { request } from './helpers/http.js'
import { matrix } from './helpers/matrix.js'
import { startFastlyApi, type VendorApi } from './helpers/vendor-api.js'

/**
 * The plugin's and expressCache()'s `cdn`, `purgers` and `awaitPurges`
 * options (DESIGN §9), on both adapters: tags on every response of a cached
 * route (hits included, never stored), Cache-Group-Invalidation on
 * mutations once the bump landed, purgers subscribed, awaited and closed.
 */

const STORED = 'groupcache; fwd=miss; stored'
const ALL = { headers: ['cacheGroups', 'fastly', 'xkey'], edgeTtl: 'cdn-cache-control' } as const

function tenant(values: GroupValues, req?: GroupRequest): Record<string, string> {
  const header = req?.headers?.['x-tenant']
  if (typeof header !== 'string') throw new Error('no tenant')
  return { tenant: header, page: String(values.page) }
}

function routes(): TestRoute[] {
  let version = 0
  return [
    { method: 'GET', path: '/users/:userId', cache: { groups: ['user:userId', 'users'] }, handler: (req) => ({ body: { user: req.params.userId, version } }) },
    { method: 'GET', path: '/about', cache: { ttl: 300 }, handler: () => ({ body: 'about' }) },
    { method: 'GET', path: '/quiet', cache: { group: 'quiet', cdn: false }, handler: () => ({ body: 'quiet' }) },
    { method: 'GET', path: '/session', cache: { group: 'session' }, handler: () => ({ headers: { 'set-cookie': 'sid=1' }, body: 'with a cookie' }) },
    { method: 'GET', path: '/missing/:id', cache: { group: 'missing:id' }, handler: () => ({ status: 404, body: 'none' }) },
    { method: 'GET', path: '/pages/:page', cache: { group: tenant }, handler: () => ({ body: 'page' }) },
    {
      method: 'GET',
      path: '/public',
      cache: { group: 'public' },
      handler: () => ({ headers: { 'cache-control': 'public, max-age=10', 'cache-groups': '"made-up"' }, body: 'public' })
    },
    { method: 'GET', path: '/listed', cache: { group: 'listed' }, handler: () => ({ headers: { 'cache-control': ['public', 'max-age=10'] }, body: 'listed' }) },
    {
      method: 'PUT',
      path: '/users/:userId',
      handler: () => {
        version++
        return { body: { ok: true }, bumps: [['user:userId'], ['users']] }
      }
    },
    { method: 'POST', path: '/posts', cache: { bumps: ['posts'] }, handler: () => ({ status: 201, body: { ok: true } }) }
  ]
}

await matrix(t, async (t, { app, store }) => {
  await t.test('every response of a cached route names its groups, hits included', async (t) => {
    const a = await app(routes(), { cdn: ALL })
    const miss = await a.request('GET', '/users/42')
    t.equal(miss.headers['cache-status'], STORED)
    t.equal(miss.headers['cache-groups'], '"gc/user:42", "gc/users", "gc/route=/users/:userId", "gc"')
    t.equal(miss.headers['surrogate-key'], 'gc/user:42 gc/users gc/route=/users/:userId gc')
    t.equal(miss.headers.xkey, 'gc/user:42 gc/users gc/route=/users/:userId gc')
    t.equal(miss.headers['cdn-cache-control'], 'max-age=60', 'the route ttl, for the edge')
    for (const method of ['GET', 'HEAD']) {
      const hit = await a.request(method, '/users/42')
      t.match(hit.headers['cache-status'], /^groupcache; hit/, method)
      t.equal(hit.headers['cache-groups'], '"gc/user:42", "gc/users", "gc/route=/users/:userId", "gc"', `${method} hit`)
      t.equal(hit.headers['cdn-cache-control'], 'max-age=60')
    }
    const notModified = await a.request('GET', '/users/42', { 'if-none-match': miss.headers.etag as string })
    t.equal(notModified.status, 304)
    t.equal(notModified.headers['surrogate-key'], 'gc/user:42 gc/users gc/route=/users/:userId gc', 'a 304 refreshes the edge copy with its tags')
    t.equal((await a.request('GET', '/users/7')).headers['cache-groups'], '"gc/user:7", "gc/users", "gc/route=/users/:userId", "gc"', 'per request values')
    const about = await a.request('GET', '/about')
    t.equal(about.headers['cache-groups'], '"gc/route=/about", "gc"', 'no groups and no params: the view group is the route generation')
    t.equal(about.headers['cdn-cache-control'], 'max-age=300')
  })

  await t.test('the tags are never stored in the entry: an app without the cdn option sharing the store serves none', async (t) => {
    const shared = store.make()
    const prefix = `cdn${process.pid}x${Date.now()}`
    const tagged = await app(routes(), { store: shared, prefix, cdn: ALL })
    const plain = await app(routes(), { store: shared, prefix })
    // One host: it is part of the key, and the two apps listen on different ports.
    const host = { host: 'shop.test' }
    t.equal((await tagged.request('GET', '/users/42', host)).headers['cache-status'], STORED)
    const hit = await plain.request('GET', '/users/42', host)
    t.match(hit.headers['cache-status'], /^groupcache; hit/)
    t.same([hit.headers['cache-groups'], hit.headers['surrogate-key'], hit.headers.xkey, hit.headers['cdn-cache-control']], [undefined, undefined, undefined, undefined])
    t.match((await tagged.request('GET', '/users/42', host)).headers, { 'cache-status': /hit/, 'cache-groups': '"gc/user:42", "gc/users", "gc/route=/users/:userId", "gc"' })
  })

  await t.test("s-maxage joins the handler's Cache-Control, and a handler's own tag header is replaced", async (t) => {
    const a = await app(routes(), { cdn: { edgeTtl: 's-maxage' } })
    const miss = await a.request('GET', '/public')
    t.equal(miss.headers['cache-status'], STORED)
    t.equal(miss.headers['cache-control'], 'public, max-age=10, s-maxage=60')
    t.equal(miss.headers['cache-groups'], '"gc/public", "gc/route=/public", "gc"')
    const hit = await a.request('GET', '/public')
    t.match(hit.headers['cache-status'], /hit/)
    t.equal(hit.headers['cache-control'], 'public, max-age=10, s-maxage=60', 'one s-maxage on hits, not one per hit')
    t.equal(hit.headers['cache-groups'], '"gc/public", "gc/route=/public", "gc"')
    for (let i = 0; i < 2; i++) t.equal((await a.request('GET', '/listed')).headers['cache-control'], 'public, max-age=10, s-maxage=60', 'a Cache-Control set as a list')
  })

  await t.test('a response this cache did not keep is tagged without an edge ttl', async (t) => {
    const a = await app(routes(), { cdn: ALL })
    const cookie = await a.request('GET', '/session')
    t.equal(cookie.headers['cache-status'], 'groupcache; fwd=miss; detail=set-cookie')
    t.match(cookie.headers, { 'cache-groups': '"gc/session", "gc/route=/session", "gc"', 'cdn-cache-control': undefined })
    const missing = await a.request('GET', '/missing/1')
    t.match(missing.headers, { 'cache-status': 'groupcache; fwd=miss; detail=status', 'cache-groups': '"gc/missing:1", "gc/route=/missing/:id", "gc"', 'cdn-cache-control': undefined })
    const authorized = await a.request('GET', '/users/42', { authorization: 'Bearer x' })
    t.match(authorized.headers, { 'cache-status': 'groupcache; fwd=bypass; detail=authorization', 'cache-groups': '"gc/user:42", "gc/users", "gc/route=/users/:userId", "gc"', 'cdn-cache-control': undefined })
  })

  await t.test('a response whose groups cannot be named is kept out of the edge', async (t) => {
    const a = await app(routes(), { cdn: ALL })
    const unnamed = await a.request('GET', '/pages/1')
    t.equal(unnamed.status, 200)
    t.match(unnamed.headers, { 'cache-status': 'groupcache; fwd=bypass; detail=group-error', 'cache-groups': undefined, 'cdn-cache-control': 'no-store', 'surrogate-control': 'no-store' })
    t.equal((await a.request('GET', '/pages/1', { 'x-tenant': 'acme' })).headers['cache-groups'], '"gc/page=1%2Ctenant=acme", "gc/route=/pages/:page", "gc"')
  })

  await t.test('untagged: a route with cdn: false, and every route without the option', async (t) => {
    const tagged = await app(routes(), { cdn: true })
    for (const path of ['/quiet', '/quiet']) t.match((await tagged.request('GET', path)).headers, { 'cache-status': /groupcache/, 'cache-groups': undefined })
    const plain = await app(routes())
    t.equal((await plain.request('GET', '/users/1')).headers['cache-groups'], undefined)
    t.equal((await plain.request('PUT', '/users/1')).headers['cache-group-invalidation'], undefined)
  })

  await t.test('a mutation names the groups it bumped in Cache-Group-Invalidation', async (t) => {
    const a = await app(routes(), { cdn: ALL })
    await a.request('GET', '/users/42')
    const put = await a.request('PUT', '/users/42')
    t.equal(put.headers['cache-group-invalidation'], '"gc/user:42", "gc/users"', 'recorded bumps')
    t.equal(put.headers['cache-groups'], undefined, 'a mutation carries no tags')
    t.equal((await a.request('POST', '/posts')).headers['cache-group-invalidation'], '"gc/posts"', 'declared bumps')
    const after = await a.request('GET', '/users/42')
    t.equal(after.headers['cache-status'], STORED)
    t.equal(JSON.parse(after.body).version, 1)
    const off = await app(routes(), { cdn: { invalidationHeader: false } })
    t.equal((await off.request('PUT', '/users/42')).headers['cache-group-invalidation'], undefined, 'invalidationHeader: false')
  })
})

async function fastlyApi(t: Test): Promise<VendorApi> {
  const api = await startFastlyApi('SVC', 'secret-token')
  t.teardown(() => api.close())
  return api
}

const purgedKeys = (api: VendorApi): string[] => api.calls.flatMap((call) => call.keys)

for (const [adapter, factory] of Object.entries(adapters)) {
  t.test(`${adapter}: purgers`, async (t) => {
    await t.test('awaitPurges: the mutation answers after its purge was sent', async (t) => {
      const api = await fastlyApi(t)
      // A window longer than the test: only the awaited idle() sends before close.
      const purger = fastlyPurger({ serviceId: 'SVC', token: 'secret-token', endpoint: api.url, windowMs: 60_000 })
      const a = await factory({ store: new MemoryStore(), cdn: true, purgers: [purger], awaitPurges: true }, routes())
      t.teardown(() => a.close())
      const put = await a.request('PUT', '/users/42')
      t.equal(put.headers['cache-group-invalidation'], '"gc/user:42", "gc/users"')
      t.same(purgedKeys(api), ['gc/user:42', 'gc/users'], 'purged before the response was written')
      t.same(api.violations, [])
    })

    await t.test('without awaitPurges the purge is queued, and the app closing sends it', async (t) => {
      const api = await fastlyApi(t)
      const purger = fastlyPurger({ serviceId: 'SVC', token: 'secret-token', endpoint: api.url, windowMs: 60_000 })
      const a = await factory({ store: new MemoryStore(), purgers: [purger] }, routes())
      t.equal((await a.request('PUT', '/users/42')).headers['cache-group-invalidation'], undefined, 'purgers alone: no header')
      await a.api.clear()
      t.same(purgedKeys(api), [], 'still in the window')
      await a.close()
      t.same(purgedKeys(api).sort(), ['gc', 'gc/user:42', 'gc/users'], 'sent when the app closed; clear() purges the deployment key')
    })

    await t.test("bumpRoute(pattern) purges a key every response of the route carried, in every vendor's header", async (t) => {
      const api = await fastlyApi(t)
      const fastly = fastlyPurger({ serviceId: 'SVC', token: 'secret-token', endpoint: api.url, windowMs: 60_000 })
      const bumped: string[][] = []
      const recorder: CdnPurger = { onBump: async (event) => void bumped.push([...event.groups]), purge: async () => {}, idle: async () => {}, close: async () => {} }
      const vendors = Object.keys(VENDORS) as Vendor[]
      const a = await factory({ store: new MemoryStore(), cdn: { headers: vendors }, purgers: [fastly, recorder], awaitPurges: true }, [
        ...routes(),
        { method: 'GET', path: '/v/:userId', cache: true, handler: (req) => ({ body: `v ${req.params.userId}` }) }
      ])
      t.teardown(() => a.close())
      const split = (vendor: Vendor, value: string): string[] =>
        vendor === 'cacheGroups' ? value.split(', ').map((member) => member.slice(1, -1)) : value.split(VENDORS[vendor].render(['', '']))
      for (const [pattern, path] of [['/v/:userId', '/v/42'], ['/users/:userId', '/users/42']] as const) {
        const response = await a.request('GET', path)
        t.equal(response.headers['cache-status'], STORED, path)
        bumped.length = 0
        api.calls.length = 0
        t.equal(await a.api.bumpRoute(pattern), true)
        t.same(bumped, [[`route=${pattern}`]], 'the bump names the route generation')
        for (const vendor of vendors) {
          const carried = split(vendor, response.headers[VENDORS[vendor].header] as string)
          t.ok(carried.includes(vendorKey(vendor, 'gc', `route=${pattern}`)), `${vendor}: ${path} carried the key bumpRoute purges (${carried.join(' ')})`)
        }
        await fastly.idle()
        t.same(purgedKeys(api), [`gc/route=${pattern}`], 'Fastly is sent the key')
        t.ok(split('fastly', response.headers['surrogate-key'] as string).includes(`gc/route=${pattern}`), `${path} carried it`)
      }
    })

    await t.test('a bump that did not land gives no header and no purge (its retry purges when it lands)', async (t) => {
      const faulty = new FaultyStore(new MemoryStore())
      const calls: string[][] = []
      const purger: CdnPurger = {
        onBump: async (event) => {
          calls.push([...event.groups])
        },
        purge: async () => {},
        idle: async () => {
          calls.push(['idle'])
        },
        close: async () => {}
      }
      const a = await factory({ store: faulty, cdn: true, purgers: [purger], awaitPurges: true }, routes())
      t.teardown(() => a.close())
      faulty.setFault('error')
      const put = await a.request('PUT', '/users/42')
      t.equal(put.status, 200, 'the mutation does not fail')
      t.equal(put.headers['cache-group-invalidation'], undefined)
      t.same(calls, [], 'nothing purged or awaited')
      faulty.setFault('none')
      t.equal((await a.request('PUT', '/users/42')).headers['cache-group-invalidation'], '"gc/user:42", "gc/users"')
      // The first bump's retry may land meanwhile (purged then, by the same listener).
      t.same(calls.at(-1), ['idle'], 'awaited once landed')
      t.ok(calls.some((c) => c.join() === 'user:42,users'))
    })

    await t.test('a purger that rejects never fails the mutation', async (t) => {
      const purger: CdnPurger = {
        onBump: async () => {},
        purge: async () => {},
        idle: () => Promise.reject(new Error('purger down')),
        close: () => Promise.reject(new Error('purger down'))
      }
      const a = await factory({ store: new MemoryStore(), cdn: true, purgers: [purger], awaitPurges: true }, routes())
      const put = await a.request('PUT', '/users/42')
      t.match(put, { status: 200, headers: { 'cache-group-invalidation': '"gc/user:42", "gc/users"' } })
      await t.resolves(a.close(), 'closing too')
    })
  })

  t.test(`${adapter}: the options are checked at registration, naming the option`, async (t) => {
    const bad: [GroupcacheOptions, RegExp][] = [
      [{ cdn: { headers: ['nope'] } } as never, /option cdn\.headers must list vendors/],
      [{ cdn: 'yes' } as never, /option cdn must be true or an object/],
      [{ cdn: { namespace: 'has space' } }, /option cdn\.namespace/],
      [{ purgers: {} } as never, /option purgers must be an array of purgers/],
      [{ purgers: [null] } as never, /option purgers\[0\] must be a purger .* got null/],
      [{ purgers: [{ onBump() {} }] } as never, /option purgers\[0\] must be a purger/],
      [{ purgers: 'fastly' } as never, /option purgers must be an array of purgers .* got "fastly"/],
      [{ purgers: [[]] } as never, /option purgers\[0\] .* got an array/],
      [{ awaitPurges: 'yes' } as never, /option awaitPurges must be a boolean/]
    ]
    for (const [options, message] of bad) await t.rejects(factory({ store: new MemoryStore(), ...options }, []), { code: 'GC_INVALID_OPTION', message }, message.source)
    const elsewhere = fastlyPurger({ serviceId: 'SVC', token: 'x', namespace: 'other' })
    await t.rejects(factory({ store: new MemoryStore(), cdn: true, purgers: [elsewhere] }, []), {
      code: 'GC_INVALID_OPTION',
      message: /option purgers\[0\] purges namespace "other" but option cdn\.namespace is "gc"/
    })
    await t.rejects(factory({ store: new MemoryStore(), cdn: true }, [{ method: 'GET', path: '/x', cache: { group: 'x', cdn: 'no' as never }, handler: () => ({ body: '' }) }]), {
      code: 'GC_INVALID_OPTION',
      message: /route .*option cdn must be a boolean/
    })
    // 31 groups: with the route generation and the deployment key, 33 keys.
    const wide = Array.from({ length: 31 }, (_, i) => `g${i}`)
    const wideRoute = (cdn?: boolean): TestRoute[] => [{ method: 'GET', path: '/wide', cache: { groups: wide, ...(cdn === undefined ? {} : { cdn }) }, handler: () => ({ body: '' }) }]
    await t.rejects(factory({ store: new MemoryStore(), cdn: true }, wideRoute()), { code: 'GC_INVALID_OPTION', message: /groupcache: route .*: 31 groups, but a CDN header carries at most 30 .*route generation/ })
    for (const [options, routeCdn] of [[{}, undefined], [{ cdn: true }, false]] as const) {
      const a = await factory({ store: new MemoryStore(), ...options }, wideRoute(routeCdn))
      t.equal((await a.request('GET', '/wide')).headers['cache-status'], STORED, 'fine without CDN headers')
      await a.close()
    }
  })
}

t.test('fastify, lookupAt onRequest: hits and bypasses are tagged too', async (t) => {
  const app = Fastify()
  await app.register(groupcache, { lookupAt: 'onRequest', cdn: { headers: ['fastly'] } })
  app.get('/users/:userId', { config: { cache: { groups: ['user:userId'] } } }, async (request) => request.params)
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  t.match((await request(base, 'GET', '/users/1')).headers, { 'cache-status': 'groupcache; fwd=miss; stored', 'surrogate-key': 'gc/user:1 gc/route=/users/:userId gc' })
  t.match((await request(base, 'GET', '/users/1')).headers, { 'cache-status': /hit/, 'surrogate-key': 'gc/user:1 gc/route=/users/:userId gc' })
  t.match((await request(base, 'GET', '/users/1', { authorization: 'x' })).headers, { 'cache-status': /bypass/, 'surrogate-key': 'gc/user:1 gc/route=/users/:userId gc' })
})

t.test('a cached route that also answers other methods tags only GET and HEAD', async (t) => {
  const app = Fastify()
  await app.register(groupcache, { cdn: true })
  app.route({ method: ['GET', 'POST'], url: '/both', config: { cache: { group: 'both' } }, handler: async () => 'both' })
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  t.equal((await request(base, 'GET', '/both')).headers['cache-groups'], '"gc/both", "gc/route=/both", "gc"')
  const post = await request(base, 'POST', '/both')
  t.match(post.headers, { 'cache-status': 'groupcache; fwd=bypass; detail=method', 'cache-groups': undefined })
})

t.test('express: gc.route() checks the group count when it is called', async (t) => {
  const gc = expressCache({ cdn: true })
  t.throws(() => gc.route({ groups: Array.from({ length: 40 }, (_, i) => `g${i}`) }), { code: 'GC_INVALID_OPTION', message: /40 groups/ })
  await gc.close()
})

t.test('capture: headers decided at write time win over those given to writeHead', async (t) => {
  const heads: unknown[][] = []
  const make = (): RawResponse & { headers: Record<string, unknown> } => {
    const headers: Record<string, unknown> = {}
    return {
      headers,
      statusCode: 200,
      getHeaders: () => ({ ...headers }) as never,
      setHeader: (name: string, value: unknown) => (headers[name] = value),
      writeHead: (...args: unknown[]) => heads.push(args),
      write: () => true,
      end: () => undefined
    } as never
  }
  const decided = { 'cache-control': 's-maxage=60' }
  const cases: unknown[][] = [[200, { 'Cache-Control': 'max-age=1', etag: '"a"' }], [200, 'OK', { 'cache-control': 'max-age=1' }], [200], [200, ['cache-control', 'max-age=1']]]
  for (const args of cases) {
    const res = make()
    holdUntilDecided(res, 1024, () => decided)
    ;(res.writeHead as (...a: unknown[]) => void)(...args)
    ;(res.end as (b: string) => void)('body')
    t.equal(res.headers['cache-control'], 's-maxage=60')
  }
  t.same(heads, [[200, { etag: '"a"' }], [200, 'OK', {}], [200], [200, ['cache-control', 'max-age=1']]], 'an object of headers loses the decided names; other forms are passed as given')
})

t.test('an edge with purgers only tags nothing and names no invalidation', async (t) => {
  const purged: string[][] = []
  const purger: CdnPurger = { onBump: async () => {}, purge: async () => {}, idle: async () => void purged.push(['idle']), close: async () => {} }
  const edge = Edge.create({ purgers: [purger], awaitPurges: true }) as Edge
  t.same(edge.responseHeaders(['user:1'], 60, true, undefined), [])
  t.equal(await edge.afterBump(['user:1'], true), undefined)
  t.same(purged, [['idle']], 'still awaited')
  t.equal(Edge.create({ cdn: false, purgers: [] }), undefined, 'nothing to do: no edge')
})

t.test('express: a route table of gc.middleware() tags with the params it matched', async (t) => {
  const gc = expressCache({ cdn: { headers: ['fastly'] } })
  const app = express()
  app.use(gc.middleware({ routes: { 'GET /users/:userId': { groups: ['user:userId'] } } }))
  app.get('/users/:userId', (req, res) => res.json({ id: req.params.userId }))
  const server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    server.close()
    await gc.close()
  })
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  t.match((await request(base, 'GET', '/users/5')).headers, { 'cache-status': 'groupcache; fwd=miss; stored', 'surrogate-key': 'gc/user:5 gc/route=/users/:userId gc' })
  t.match((await request(base, 'GET', '/users/5')).headers, { 'cache-status': /hit/, 'surrogate-key': 'gc/user:5 gc/route=/users/:userId gc' })
})
