import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { GenerationalCache, MemoryStore, type Store } from '../lib/index.js'
import { buildApp } from '../example-app/app.js'
import { buildExpressApp } from '../example-app/express-app.js'
import { FaultyStore } from './helpers/faulty-store.js'
import { request } from './helpers/http.js'
import { storeKits } from './helpers/stores.js'

/** Starts one of the example's twins; returns its base URL and a close function. */
const twins: Record<string, (store: Store | undefined) => Promise<{ base: string; close(): Promise<void> }>> = {
  fastify: async (store) => {
    const app = await buildApp(store ? { store } : {})
    return { base: await app.listen({ host: '127.0.0.1', port: 0 }), close: () => app.close() }
  },
  express: async (store) => {
    const { app, gc, metrics } = buildExpressApp(store ? { store } : {})
    const server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s))
    })
    return {
      base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      close: async () => {
        await new Promise((resolve) => server.close(resolve))
        await gc.close()
        metrics.close()
      }
    }
  }
}

const HIT = /^groupcache; hit; ttl=\d+$/

/** Prometheus exposition text → value by `name{label="v",…}` with labels sorted. */
function parseMetrics(text: string): Map<string, number> {
  const values = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const space = line.lastIndexOf(' ')
    const series = line.slice(0, space)
    const brace = series.indexOf('{')
    const name = brace === -1 ? series : series.slice(0, brace)
    const labels = brace === -1 ? [] : [...series.slice(brace).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map(([, k, v]) => `${k}="${v}"`).sort()
    values.set(`${name}{${labels.join(',')}}`, Number(line.slice(space + 1)))
  }
  return values
}
const STORED = 'groupcache; fwd=miss; stored'

for (const kit of await storeKits(t)) {
  for (const [framework, start] of Object.entries(twins)) {
    t.test(`the example blog on ${framework} and ${kit.name} caches, and its mutations bump what they change`, async (t) => {
      const { base, close } = await start(kit.make())
      t.teardown(close)
      const call = async (method: string, url: string, body?: unknown, headers: Record<string, string> = {}) => {
        const r = body === undefined ? await request(base, method, url, headers) : await request(base, method, url, { ...headers, 'content-type': 'application/json' }, JSON.stringify(body))
        return { status: r.status, cache: r.headers['cache-status'], body: r.body ? JSON.parse(r.body) : undefined }
      }
      const get = (url: string, headers: Record<string, string> = {}) => call('GET', url, undefined, headers)

      t.equal((await get('/users/1')).cache, STORED)
      t.match((await get('/users/1')).cache, HIT)
      t.equal((await call('PUT', '/users/1', { name: 'Ada L.' })).status, 200)
      const after = await get('/users/1')
      t.equal(after.cache, STORED)
      t.equal(after.body.name, 'Ada L.')

      await get('/posts')
      await get('/users/1/posts')
      t.match((await get('/posts')).cache, HIT)
      t.equal((await call('POST', '/posts', { title: 'Hi' })).status, 201)
      const posts = await get('/posts')
      t.equal(posts.cache, STORED)
      t.equal(posts.body.length, 2)
      t.equal((await get('/users/1/posts')).cache, STORED, 'depends on posts too')

      await get('/blogs/7/posts/1')
      t.match((await get('/blogs/7/posts/1')).cache, HIT)
      t.same((await get('/blogs/7/comments')).body, [])
      await call('POST', '/blogs/7/comments', { text: 'nice' })
      t.same((await get('/blogs/7/comments')).body, [{ blogId: '7', text: 'nice' }])

      t.equal((await get('/feed', { 'x-tenant': 'acme' })).cache, STORED)
      t.equal((await get('/feed', { 'x-tenant': 'umbrella' })).cache, STORED, 'one group per tenant')
      t.match((await get('/feed', { 'x-tenant': 'acme' })).cache, HIT)
      await call('POST', '/feed/acme/refresh')
      t.equal((await get('/feed', { 'x-tenant': 'acme' })).cache, STORED)
      t.match((await get('/feed', { 'x-tenant': 'umbrella' })).cache, HIT)
      t.same((await get('/feed')).body, { tenant: 'public', posts: 2 })

      await get('/about')
      t.match((await get('/about')).cache, HIT)
      t.same((await call('POST', '/admin/clear')).body, { cleared: true })
      t.equal((await get('/about')).cache, STORED)

      t.equal((await get('/users/404')).status, 404)
      t.equal((await get('/blogs/7/posts/404')).status, 404)
      t.equal((await call('PUT', '/users/404', {})).status, 404)
      t.equal((await call('PUT', '/users/2')).body.name, 'Grace', 'no body keeps the name')
      t.same((await call('POST', '/posts')).body, { id: '3', blogId: '7', authorId: '1', title: 'Untitled' })
      t.same((await call('POST', '/blogs/8/comments')).body, { blogId: '8', text: '' })
      const stats = (await get('/admin/stats')).body
      t.ok(stats.hits >= 6)
      t.match(stats.routes['GET /users/:userId'], { hits: 1, misses: 3, stored: 2, notStored: { status: 1 } })

      // Built from the diagnostics channels only (example-app/metrics.ts); counts follow from the requests above.
      const scrape = await request(base, 'GET', '/metrics')
      t.match(scrape.headers['content-type'], /^text\/plain; version=0\.0\.4/)
      const metrics = parseMetrics(scrape.body)
      const users = 'route="GET /users/:userId"'
      t.equal(metrics.get(`groupcache_lookups_total{outcome="hit",${users}}`), 1)
      t.equal(metrics.get(`groupcache_lookups_total{outcome="miss",${users}}`), 3, 'first read, after the PUT, and the 404')
      t.equal(metrics.get('groupcache_lookups_total{outcome="hit",route="GET /posts"}'), 1)
      t.equal(metrics.get('groupcache_lookups_total{outcome="miss",route="GET /posts"}'), 2)
      t.equal(metrics.get(`groupcache_lookup_duration_seconds_count{outcome="miss",${users}}`), 3)
      t.equal(metrics.get(`groupcache_lookup_duration_seconds_bucket{le="+Inf",outcome="hit",${users}}`), 1)
      t.ok(metrics.get(`groupcache_lookup_duration_seconds_sum{outcome="hit",${users}}`)! > 0)
      t.equal(metrics.get(`groupcache_stored_total{${users}}`), 2)
      t.equal(metrics.get(`groupcache_not_stored_total{reason="status",${users}}`), 1, 'the 404')
      t.same(
        ['user', 'posts', 'blog', 'feed', '*'].map((group) => metrics.get(`groupcache_bumps_total{group="${group}"}`)),
        [2, 2, 2, 1, 1],
        'PUT /users/1 and /users/2; two POST /posts; two comment POSTs; one feed refresh; one clear'
      )
      t.equal(metrics.get('groupcache_breaker_state{}'), 0)
    })
  }
}

t.test('both twins run on their default store', async (t) => {
  for (const start of Object.values(twins)) {
    const { base, close } = await start(undefined)
    await request(base, 'GET', '/posts')
    t.match((await request(base, 'GET', '/posts')).headers['cache-status'], HIT)
    await close()
  }
})

t.test('/metrics counts store faults by code and shows the breaker opening; other caches\' events are not counted', async (t) => {
  const store = new FaultyStore(new MemoryStore())
  const app = await buildApp({ store })
  t.teardown(() => app.close())
  const other = new GenerationalCache({ prefix: 'other' })
  t.teardown(() => other.close())
  const scrape = async () => parseMetrics((await app.inject('/metrics')).body)

  store.setFault('hang')
  t.equal((await app.inject('/posts')).headers['cache-status'], 'groupcache; fwd=bypass; detail=store-timeout')
  store.setFault('error')
  let failed = 0
  while ((await scrape()).get('groupcache_breaker_state{}') !== 2 && failed < 20) {
    t.equal((await app.inject('/posts')).statusCode, 200)
    failed++
  }
  await other.bump('posts')
  const metrics = await scrape()
  t.equal(metrics.get('groupcache_breaker_state{}'), 2, 'open')
  t.equal(metrics.get('groupcache_store_faults_total{code="GC_STORE_TIMEOUT",what="lookup"}'), 1)
  t.equal(metrics.get('groupcache_store_faults_total{code="none",what="lookup"}'), failed)
  t.equal(failed + 1, 5, 'the breaker opens after 5 consecutive failures (its default)')
  t.equal(metrics.get('groupcache_lookups_total{outcome="bypass",route="GET /posts"}'), 5)
  t.equal(metrics.get('groupcache_bumps_total{group="posts"}'), undefined, 'the bump of the cache prefixed "other" is not this cache\'s')
})
