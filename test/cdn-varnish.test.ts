import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { varnishPurger } from '../lib/cdn/varnish.js'
import groupcache, { type CdnOptions } from '../lib/index.js'
import { buildApp } from '../example-app/app.js'
import { freePort } from './helpers/redis.js'
import { Varnish } from './helpers/varnish.js'

/**
 * End to end through a real Varnish (vmod xkey) running the repo's VCL in
 * front of a Fastify app cached by groupcache with its `cdn`, `purgers` and
 * `awaitPurges` options: Varnish caches by the headers the plugin emits, and a
 * bump makes its next response fresh.
 */

const cdn: CdnOptions = { headers: ['cacheGroups', 'xkey'], edgeTtl: 'cdn-cache-control' }

/**
 * Varnish first (on the port the app will listen on: the purger needs
 * Varnish's URL at registration), then the app. `purge`: how a bump reaches
 * Varnish — an awaited purge, a queued one (a long window: only idle() or
 * close() sends it), or none (only a mutation passing through Varnish).
 */
async function setup(t: Test, purge: 'awaited' | 'queued' | 'none') {
  const port = await freePort()
  const varnish = await Varnish.start(port)
  const purger = varnishPurger({ url: varnish.url, windowMs: 60_000 })
  const app = Fastify()
  await app.register(groupcache, { ttl: 60, cdn, purgers: purge === 'none' ? [] : [purger], awaitPurges: purge === 'awaited' })
  const users = new Map([['42', 'Ada'], ['7', 'Grace']])
  let handlerRuns = 0
  type Id = { Params: { userId: string } }
  app.get<Id>('/users/:userId', { config: { cache: { groups: ['user:userId'] } } }, async (request) => {
    handlerRuns++
    return { id: request.params.userId, name: users.get(request.params.userId) }
  })
  app.put<Id & { Body: { name: string } }>('/users/:userId', async (request, reply) => {
    users.set(request.params.userId, request.body.name)
    reply.bumpGroup('user:userId')
    return { ok: true }
  })
  await app.listen({ port, host: '127.0.0.1' })
  t.teardown(async () => {
    await app.close()
    await purger.close()
    await varnish.stop()
  })
  return { purger, app, varnish, origin: `http://127.0.0.1:${port}`, runs: () => handlerRuns }
}

async function get(url: string): Promise<{ name: string; cache: string | null; groups: string | null; xkey: string | null; ttl: string | null }> {
  const res = await fetch(url)
  const body = (await res.json()) as { name: string }
  return { name: body.name, cache: res.headers.get('x-varnish-cache'), groups: res.headers.get('cache-groups'), xkey: res.headers.get('xkey'), ttl: res.headers.get('cdn-cache-control') }
}

async function put(url: string, body: object): Promise<Response> {
  return fetch(url, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
}

t.test('Varnish caches by the groups; with awaitPurges, a mutation answers once Varnish is fresh', async (t) => {
  const { app, varnish, purger, origin, runs } = await setup(t, 'awaited')

  const first = await get(`${varnish.url}/users/42`)
  t.match(first, { name: 'Ada', cache: 'MISS', groups: '"gc/user:42", "gc/route=/users/:userId", "gc"', xkey: null, ttl: 'max-age=60' }, 'tagged by the plugin; xkey kept inside Varnish')
  t.match(await get(`${varnish.url}/users/42`), { name: 'Ada', cache: 'HIT' }, 'cached at Varnish')
  t.match(await get(`${varnish.url}/users/7`), { name: 'Grace', cache: 'MISS' })
  t.equal(runs(), 2)

  // The mutation goes straight to the origin, not through Varnish: only the purge can reach Varnish.
  const renamed = await put(`${origin}/users/42`, { name: 'Ada L.' })
  t.equal(renamed.status, 200)
  t.equal(renamed.headers.get('cache-group-invalidation'), '"gc/user:42"')
  t.match(await get(`${varnish.url}/users/42`), { name: 'Ada L.', cache: 'MISS' }, 'fresh right after the mutation answered')
  t.match(await get(`${varnish.url}/users/42`), { name: 'Ada L.', cache: 'HIT' })
  t.match(await get(`${varnish.url}/users/7`), { name: 'Grace', cache: 'HIT' }, 'other groups untouched')

  // bumpRoute purges the route generation, which every response of the route names.
  t.equal(await app.groupcache.bumpRoute('/users/:userId'), true)
  await purger.idle()
  t.match(await get(`${varnish.url}/users/42`), { name: 'Ada L.', cache: 'MISS' }, 'bumpRoute: purged at Varnish')
  t.match(await get(`${varnish.url}/users/7`), { name: 'Grace', cache: 'MISS' }, 'every copy of the route')
  t.match(await get(`${varnish.url}/users/7`), { cache: 'HIT' })

  // A clear purges the deployment key: everything.
  await app.groupcache.clear()
  await purger.idle()
  t.match(await get(`${varnish.url}/users/7`), { cache: 'MISS' })
})

t.test('without awaitPurges, Varnish serves the old copy until the purge arrives (documented)', async (t) => {
  const { varnish, purger, origin } = await setup(t, 'queued')
  t.match(await get(`${varnish.url}/users/42`), { name: 'Ada', cache: 'MISS' })
  t.equal((await put(`${origin}/users/42`, { name: 'Ada L.' })).status, 200)
  t.match(await get(`${varnish.url}/users/42`), { name: 'Ada', cache: 'HIT' }, 'purge still queued: stale at the edge (the origin itself is fresh)')
  t.match(await get(`${origin}/users/42`), { name: 'Ada L.' })
  await purger.idle()
  t.match(await get(`${varnish.url}/users/42`), { name: 'Ada L.', cache: 'MISS' }, 'fresh once the queued purge was sent')

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
  const { varnish } = await setup(t, 'none')
  t.match(await get(`${varnish.url}/users/42`), { name: 'Ada', cache: 'MISS' })
  t.match(await get(`${varnish.url}/users/7`), { name: 'Grace', cache: 'MISS' })
  const res = await put(`${varnish.url}/users/42`, { name: 'Ada L.' })
  t.equal(res.headers.get('cache-group-invalidation'), '"gc/user:42"')
  t.equal(res.headers.get('x-invalidated'), '1', 'Varnish purged one object before answering')
  t.match(await get(`${varnish.url}/users/42`), { name: 'Ada L.', cache: 'MISS' }, 'read-your-writes through the proxy')
  t.match(await get(`${varnish.url}/users/7`), { name: 'Grace', cache: 'HIT' })
})

t.test('the Fastify example behind Varnish: its own mutations purge the groups they bump', async (t) => {
  const port = await freePort()
  const varnish = await Varnish.start(port)
  const purger = varnishPurger({ url: varnish.url })
  const app: FastifyInstance = await buildApp({ cache: { cdn, purgers: [purger] } })
  await app.listen({ port, host: '127.0.0.1' })
  const origin = `http://127.0.0.1:${port}`
  t.teardown(async () => {
    await app.close()
    await varnish.stop()
  })
  const read = async (path: string): Promise<{ body: string; cache: string | null; groups: string | null }> => {
    const res = await fetch(`${varnish.url}${path}`)
    return { body: await res.text(), cache: res.headers.get('x-varnish-cache'), groups: res.headers.get('cache-groups') }
  }

  const user = await read('/users/1')
  t.match(user, { cache: 'MISS', groups: '"gc/user:1", "gc/route=/users/:userId", "gc"' })
  t.match(await read('/users/1'), { body: user.body, cache: 'HIT' })
  const posts = await read('/users/1/posts')
  t.match(posts, { cache: 'MISS', groups: '"gc/user:1", "gc/posts", "gc/route=/users/:userId/posts", "gc"' })
  t.match(await read('/posts'), { cache: 'MISS' })

  // reply.bumpGroup('user:userId') in the example's PUT, sent to the origin.
  const rename = await fetch(`${origin}/users/1`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'Renamed' }) })
  t.equal(rename.headers.get('cache-group-invalidation'), '"gc/user:1"')
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
