import t from 'tap'
import { gate, matrix } from './helpers/matrix.js'
import type { TestRoute } from './helpers/apps.js'

const MISS_STORED = 'groupcache; fwd=miss; stored'

/** A tiny blog: users and their posts, with a version counter per user standing in for the database. */
function blog() {
  const db = { users: new Map<string, number>(), posts: 0 }
  const routes: TestRoute[] = [
    { method: 'GET', path: '/users/:userId', cache: { groups: ['user:userId'] }, handler: (req) => ({ body: { user: req.params.userId, v: db.users.get(req.params.userId as string) ?? 0 } }) },
    {
      method: 'PUT',
      path: '/users/:userId',
      handler: (req) => {
        db.users.set(req.params.userId as string, (db.users.get(req.params.userId as string) ?? 0) + 1)
        return { body: { ok: true }, bumps: [['user:userId']] }
      }
    },
    { method: 'GET', path: '/posts', cache: { groups: ['posts'] }, handler: () => ({ body: { posts: db.posts } }) },
    {
      method: 'POST',
      path: '/posts',
      cache: { bumps: ['posts'] },
      handler: () => {
        db.posts++
        return { status: 201, body: { ok: true } }
      }
    }
  ]
  return { db, routes }
}

await matrix(t, async (t, { app }) => {
  await t.test('read your writes: the GET right after a mutation’s response sees the new data', async (t) => {
    const { routes } = blog()
    const a = await app(routes)
    t.equal(JSON.parse((await a.request('GET', '/users/1')).body).v, 0)
    t.match((await a.request('GET', '/users/1')).headers['cache-status'], /hit/)
    t.equal((await a.request('PUT', '/users/1')).status, 200)
    const after = await a.request('GET', '/users/1')
    t.equal(after.headers['cache-status'], MISS_STORED)
    t.equal(JSON.parse(after.body).v, 1)
  })

  await t.test('a bump orphans only its own group', async (t) => {
    const { routes } = blog()
    const a = await app(routes)
    await a.request('GET', '/users/1')
    await a.request('GET', '/users/2')
    await a.request('GET', '/posts')
    await a.request('PUT', '/users/1')
    t.equal((await a.request('GET', '/users/1')).headers['cache-status'], MISS_STORED)
    t.match((await a.request('GET', '/users/2')).headers['cache-status'], /hit/)
    t.match((await a.request('GET', '/posts')).headers['cache-status'], /hit/)
  })

  await t.test('declarative bumps apply when the route answers', async (t) => {
    const { routes } = blog()
    const a = await app(routes)
    await a.request('GET', '/posts')
    t.equal((await a.request('POST', '/posts')).status, 201)
    const after = await a.request('GET', '/posts')
    t.equal(after.headers['cache-status'], MISS_STORED)
    t.equal(JSON.parse(after.body).posts, 1)
  })

  await t.test('recorded bumps apply whatever the status', async (t) => {
    const a = await app([
      { method: 'GET', path: '/thing', cache: { group: 'thing' }, handler: () => ({ body: 'thing' }) },
      { method: 'DELETE', path: '/thing', handler: () => ({ status: 500, body: 'failed half-way', bumps: [['thing']] }) }
    ])
    await a.request('GET', '/thing')
    t.equal((await a.request('DELETE', '/thing')).status, 500)
    t.equal((await a.request('GET', '/thing')).headers['cache-status'], MISS_STORED)
  })

  await t.test('the api bumps a group by explicit values; 42 and "42" are one group', async (t) => {
    const { routes } = blog()
    const a = await app(routes)
    await a.request('GET', '/users/42')
    t.equal(await a.api.bump('user:userId', { userId: 42 }), true)
    t.equal((await a.request('GET', '/users/42')).headers['cache-status'], MISS_STORED)
  })

  await t.test('a bump landing while the handler runs orphans the entry it stores', async (t) => {
    const release = gate()
    const entered = gate()
    let runs = 0
    const a = await app([
      {
        method: 'GET',
        path: '/slow/:id',
        cache: { groups: ['slow:id'] },
        handler: async () => {
          runs++
          entered.open()
          if (runs === 1) await release.wait
          return { body: `run ${runs}` }
        }
      }
    ])
    const pending = a.request('GET', '/slow/1')
    await entered.wait
    await a.api.bump('slow:id', { id: '1' })
    release.open()
    const first = await pending
    t.equal(first.body, 'run 1')
    t.equal(first.headers['cache-status'], MISS_STORED, 'stored — under the versions read before the handler ran')
    const next = await a.request('GET', '/slow/1')
    t.equal(next.body, 'run 2', 'the entry stored during the bump is never served')
    t.equal(next.headers['cache-status'], MISS_STORED)
  })

  await t.test('bumpRoute moves a route generation, or one view group', async (t) => {
    let runs = 0
    const a = await app([{ method: 'GET', path: '/pages/:slug', cache: true, handler: (req) => ({ body: `${req.params.slug} ${++runs}` }) }])
    await a.request('GET', '/pages/a')
    await a.request('GET', '/pages/b')
    await a.api.bumpRoute('/pages/:slug', { slug: 'a' })
    t.equal((await a.request('GET', '/pages/a')).body, 'a 3', 'the view group of slug=a moved')
    t.equal((await a.request('GET', '/pages/b')).body, 'b 2', 'slug=b untouched')
    await a.api.bumpRoute('/pages/:slug')
    t.equal((await a.request('GET', '/pages/a')).body, 'a 4')
    t.equal((await a.request('GET', '/pages/b')).body, 'b 5')
  })

  await t.test('a route generation bump also orphans a route that declares groups', async (t) => {
    const { routes } = blog()
    const a = await app(routes)
    await a.request('GET', '/users/1')
    await a.api.bumpRoute('/users/:userId')
    t.equal((await a.request('GET', '/users/1')).headers['cache-status'], MISS_STORED)
  })

  await t.test('clear() orphans every entry at once', async (t) => {
    const { routes } = blog()
    const a = await app(routes)
    await a.request('GET', '/users/1')
    await a.request('GET', '/posts')
    t.equal(await a.api.clear(), true)
    t.equal((await a.request('GET', '/users/1')).headers['cache-status'], MISS_STORED)
    t.equal((await a.request('GET', '/posts')).headers['cache-status'], MISS_STORED)
  })
})
