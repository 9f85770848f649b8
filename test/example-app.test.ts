import t from 'tap'
import { buildApp } from '../example-app/app.js'
import { storeKits } from './helpers/stores.js'

for (const kit of await storeKits(t)) t.test(`the example blog on ${kit.name} caches, and its mutations bump what they change`, async (t) => {
  const app = await buildApp({ store: kit.make() })
  t.teardown(() => app.close())
  const get = async (url: string, headers: Record<string, string> = {}) => {
    const r = await app.inject({ url, headers })
    return { status: r.statusCode, cache: r.headers['cache-status'], body: r.json() }
  }
  const HIT = /^groupcache; hit; ttl=\d+$/
  const STORED = 'groupcache; fwd=miss; stored'

  t.equal((await get('/users/1')).cache, STORED)
  t.match((await get('/users/1')).cache, HIT)
  const put = await app.inject({ method: 'PUT', url: '/users/1', payload: { name: 'Ada L.' } })
  t.equal(put.statusCode, 200)
  const after = await get('/users/1')
  t.equal(after.cache, STORED)
  t.equal(after.body.name, 'Ada L.')

  await get('/posts')
  await get('/users/1/posts')
  t.match((await get('/posts')).cache, HIT)
  t.equal((await app.inject({ method: 'POST', url: '/posts', payload: { title: 'Hi' } })).statusCode, 201)
  const posts = await get('/posts')
  t.equal(posts.cache, STORED)
  t.equal(posts.body.length, 2)
  t.equal((await get('/users/1/posts')).cache, STORED, 'depends on posts too')

  await get('/blogs/7/posts/1')
  t.match((await get('/blogs/7/posts/1')).cache, HIT)

  t.same((await get('/blogs/7/comments')).body, [])
  await app.inject({ method: 'POST', url: '/blogs/7/comments', payload: { text: 'nice' } })
  t.same((await get('/blogs/7/comments')).body, [{ blogId: '7', text: 'nice' }])

  t.equal((await get('/feed', { 'x-tenant': 'acme' })).cache, STORED)
  t.equal((await get('/feed', { 'x-tenant': 'umbrella' })).cache, STORED, 'one group per tenant')
  t.match((await get('/feed', { 'x-tenant': 'acme' })).cache, HIT)
  await app.inject({ method: 'POST', url: '/feed/acme/refresh' })
  t.equal((await get('/feed', { 'x-tenant': 'acme' })).cache, STORED)
  t.match((await get('/feed', { 'x-tenant': 'umbrella' })).cache, HIT)

  await get('/about')
  t.match((await get('/about')).cache, HIT)
  t.same((await app.inject({ method: 'POST', url: '/admin/clear' })).json(), { cleared: true })
  t.equal((await get('/about')).cache, STORED)
  t.equal((await get('/users/404')).status, 404)
  t.equal((await get('/blogs/7/posts/404')).status, 404)
  t.equal((await app.inject({ method: 'PUT', url: '/users/404', payload: {} })).statusCode, 404)
  t.equal((await app.inject({ method: 'PUT', url: '/users/2' })).json().name, 'Grace', 'no body keeps the name')
  t.same((await app.inject({ method: 'POST', url: '/posts' })).json(), { id: '3', blogId: '7', authorId: '1', title: 'Untitled' })
  t.same((await app.inject({ method: 'POST', url: '/blogs/8/comments' })).json(), { blogId: '8', text: '' })
  t.same((await get('/feed')).body, { tenant: 'public', posts: 3 })
  t.ok((await get('/admin/stats')).body.hits >= 6)
})

t.test('the example blog runs on the default store', async (t) => {
  const app = await buildApp()
  t.teardown(() => app.close())
  await app.inject('/posts')
  t.match((await app.inject('/posts')).headers['cache-status'], /hit/)
})
