import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import t, { type Test } from 'tap'
import { cdnConfig, cdnResponseHeaders, invalidationHeader } from '../lib/cdn/headers.js'
import type { CdnPurger } from '../lib/cdn/purger.js'
import { varnishPurger } from '../lib/cdn/varnish.js'
import { compileGroup, groupName, type GroupValues } from '../lib/core/groups.js'
import groupcache, { type RouteCacheOptions } from '../lib/index.js'
import { buildApp } from '../example-app/app.js'
import { Varnish } from './helpers/varnish.js'

/**
 * End to end through a real Varnish (vmod xkey) running the repo's VCL in
 * front of a Fastify app cached by groupcache: Varnish caches by the headers
 * the app emits, and a bump makes its next response fresh.
 */

const cdn = cdnConfig({ headers: ['cacheGroups', 'xkey'], edgeTtl: 'cdn-cache-control' })
const userGroup = compileGroup('user:userId')
const nameOf = (params: unknown): string => groupName(userGroup.encode(params as GroupValues))

async function setup(t: Test) {
  const app = Fastify()
  await app.register(groupcache, { ttl: 60 })
  const users = new Map([['42', 'Ada'], ['7', 'Grace']])
  let handlerRuns = 0

  // What the plugin's `cdn` option is to do (README "Behind a CDN"): name the response's groups for the edge.
  const tagResponse = (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: null, p: unknown) => void): void => {
    for (const [name, value] of cdnResponseHeaders(cdn, [nameOf(request.params)], 60)) reply.header(name, value)
    done(null, payload)
  }
  type Id = { Params: { userId: string } }
  app.get<Id>('/users/:userId', { config: { cache: { groups: ['user:userId'] } }, onSend: tagResponse }, async (request) => {
    handlerRuns++
    return { id: request.params.userId, name: users.get(request.params.userId) }
  })
  let purger: CdnPurger | undefined
  // Renames, bumps, and when asked waits for the purge (read-your-writes through the proxy).
  app.put<Id & { Body: { name: string; awaitPurge?: boolean } }>('/users/:userId', async (request, reply) => {
    users.set(request.params.userId, request.body.name)
    await app.groupcache.bump('user:userId', request.params)
    if (request.body.awaitPurge === true) await purger?.idle()
    const header = invalidationHeader(cdn, [nameOf(request.params)])
    if (header !== undefined) reply.header(...header)
    return { ok: true }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const varnish = await Varnish.start(port)
  // A long window: only an awaited purge (idle() flushes at once) can land before the next request.
  purger = varnishPurger({ url: varnish.url, windowMs: 500 })
  t.teardown(async () => {
    await purger?.close()
    await varnish.stop()
    await app.close()
  })
  return { purger, app, varnish, runs: () => handlerRuns }
}

async function get(url: string): Promise<{ name: string; cache: string | null; groups: string | null; xkey: string | null; ttl: string | null }> {
  const res = await fetch(url)
  const body = (await res.json()) as { name: string }
  return { name: body.name, cache: res.headers.get('x-varnish-cache'), groups: res.headers.get('cache-groups'), xkey: res.headers.get('xkey'), ttl: res.headers.get('cdn-cache-control') }
}

async function put(url: string, body: object): Promise<Response> {
  return fetch(url, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
}

t.test('Varnish caches by the groups; an awaited purge after a bump makes its next response fresh', async (t) => {
  const { app, varnish, purger, runs } = await setup(t)
  const off = app.groupcache.cache.onBump(purger.onBump)
  const origin = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

  const first = await get(`${varnish.url}/users/42`)
  t.match(first, { name: 'Ada', cache: 'MISS', groups: '"gc/user:42", "gc"', xkey: null, ttl: 'max-age=60' }, 'tagged by the app; xkey kept inside Varnish')
  t.match(await get(`${varnish.url}/users/42`), { name: 'Ada', cache: 'HIT' }, 'cached at Varnish')
  t.match(await get(`${varnish.url}/users/7`), { name: 'Grace', cache: 'MISS' })
  t.equal(runs(), 2)

  // The mutation goes straight to the origin, not through Varnish: only the purge can reach Varnish.
  t.equal((await put(`${origin}/users/42`, { name: 'Ada L.', awaitPurge: true })).status, 200)
  t.match(await get(`${varnish.url}/users/42`), { name: 'Ada L.', cache: 'MISS' }, 'fresh right after the mutation answered')
  t.match(await get(`${varnish.url}/users/42`), { name: 'Ada L.', cache: 'HIT' })
  t.match(await get(`${varnish.url}/users/7`), { name: 'Grace', cache: 'HIT' }, 'other groups untouched')

  // A clear purges the deployment key: everything.
  await app.groupcache.clear()
  await purger.idle()
  t.match(await get(`${varnish.url}/users/7`), { cache: 'MISS' })
  off()
})

t.test('without an awaited purge, Varnish serves the old copy until the purge arrives (documented)', async (t) => {
  const { app, varnish, purger } = await setup(t)
  const origin = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  t.match(await get(`${varnish.url}/users/42`), { name: 'Ada', cache: 'MISS' })
  await put(`${origin}/users/42`, { name: 'Ada L.' })
  t.match(await get(`${varnish.url}/users/42`), { name: 'Ada', cache: 'HIT' }, 'no purger subscribed: stale at the edge (the origin itself is fresh)')
  t.match(await get(`${origin}/users/42`), { name: 'Ada L.' })
  await purger.purge(['user:42'])
  t.match(await get(`${varnish.url}/users/42`), { name: 'Ada L.', cache: 'MISS' }, 'fresh once the purge landed')

  // Soft purge (xkey.softpurge): the object is kept stale for grace (0 s in this Varnish), so the next request refetches too.
  const soft = varnishPurger({ url: varnish.url, soft: true })
  await put(`${origin}/users/42`, { name: 'Ada K.' })
  t.match(await get(`${varnish.url}/users/42`), { name: 'Ada L.', cache: 'HIT' })
  await soft.purge(['user:42'])
  await soft.close()
  t.match(await get(`${varnish.url}/users/42`), { name: 'Ada K.', cache: 'MISS' }, 'fresh after a soft purge')
  const bare = await fetch(`${varnish.url}/`, { method: 'PURGE' })
  await bare.arrayBuffer()
  t.equal(bare.status, 400, 'a PURGE without keys is refused')
})

t.test('RFC 9875: a mutation through Varnish invalidates by its Cache-Group-Invalidation, no purger needed', async (t) => {
  const { varnish } = await setup(t)
  t.match(await get(`${varnish.url}/users/42`), { name: 'Ada', cache: 'MISS' })
  t.match(await get(`${varnish.url}/users/7`), { name: 'Grace', cache: 'MISS' })
  const res = await put(`${varnish.url}/users/42`, { name: 'Ada L.' })
  t.equal(res.headers.get('cache-group-invalidation'), '"gc/user:42"')
  t.equal(res.headers.get('x-invalidated'), '1', 'Varnish purged one object before answering')
  t.match(await get(`${varnish.url}/users/42`), { name: 'Ada L.', cache: 'MISS' }, 'read-your-writes through the proxy')
  t.match(await get(`${varnish.url}/users/7`), { name: 'Grace', cache: 'HIT' })
})

t.test('the Fastify example behind Varnish: its own mutations purge the groups they bump', async (t) => {
  const app = await buildApp()
  // Stand-in for the plugin's `cdn` option: tag each cached GET with its route's groups.
  app.addHook('onSend', (request, reply, payload, done) => {
    const cache = request.routeOptions.config.cache as RouteCacheOptions | boolean | undefined
    if (request.method === 'GET' && typeof cache === 'object') {
      const defs = cache.groups ?? (cache.group === undefined ? [] : [cache.group])
      const names = defs.map((def) => groupName(compileGroup(def).encode(request.params as GroupValues, request)))
      for (const [name, value] of cdnResponseHeaders(cdn, names, cache.ttl ?? 60)) reply.header(name, value)
    }
    done(null, payload)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const origin = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const varnish = await Varnish.start((app.server.address() as { port: number }).port)
  const purger = varnishPurger({ url: varnish.url })
  app.groupcache.cache.onBump(purger.onBump)
  t.teardown(async () => {
    await purger.close()
    await varnish.stop()
    await app.close()
  })
  const read = async (path: string): Promise<{ body: string; cache: string | null; groups: string | null }> => {
    const res = await fetch(`${varnish.url}${path}`)
    return { body: await res.text(), cache: res.headers.get('x-varnish-cache'), groups: res.headers.get('cache-groups') }
  }

  const user = await read('/users/1')
  t.match(user, { cache: 'MISS', groups: '"gc/user:1", "gc"' })
  t.match(await read('/users/1'), { body: user.body, cache: 'HIT' })
  const posts = await read('/users/1/posts')
  t.match(posts, { cache: 'MISS', groups: '"gc/user:1", "gc/posts", "gc"' })
  t.match(await read('/posts'), { cache: 'MISS' })

  // reply.bumpGroup('user:userId') in the example's PUT, sent to the origin.
  await fetch(`${origin}/users/1`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'Renamed' }) })
  await purger.idle()
  const renamed = await read('/users/1')
  t.match(renamed, { cache: 'MISS' }, 'purged by the name the plugin gave the bump')
  t.match(renamed.body, /Renamed/)
  t.match(await read('/users/1/posts'), { cache: 'MISS' }, 'every response tagged with the group')
  t.match(await read('/posts'), { cache: 'HIT' }, 'others kept')

  // A declared bump (config.cache.bumps: ['posts']) on the example's POST /posts.
  await fetch(`${origin}/posts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ title: 'New' }) })
  await purger.idle()
  t.match(await read('/posts'), { cache: 'MISS', body: /New/ })
  t.match(await read('/users/1'), { cache: 'HIT' })
})
