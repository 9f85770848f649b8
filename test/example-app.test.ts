import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import type { Store } from '../lib/index.js'
import { buildApp } from '../example-app/app.js'
import { buildExpressApp } from '../example-app/express-app.js'
import { request } from './helpers/http.js'
import { storeKits } from './helpers/stores.js'

/** Starts one of the example's twins; returns its base URL and a close function. */
const twins: Record<string, (store: Store | undefined) => Promise<{ base: string; close(): Promise<void> }>> = {
  fastify: async (store) => {
    const app = await buildApp(store ? { store } : {})
    return { base: await app.listen({ host: '127.0.0.1', port: 0 }), close: () => app.close() }
  },
  express: async (store) => {
    const { app, gc } = buildExpressApp(store ? { store } : {})
    const server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s))
    })
    return {
      base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      close: async () => {
        await new Promise((resolve) => server.close(resolve))
        await gc.close()
      }
    }
  }
}

const HIT = /^groupcache; hit; ttl=\d+$/
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
      t.ok((await get('/admin/stats')).body.hits >= 6)
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
