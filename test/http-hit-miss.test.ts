import t from 'tap'
import { matrix } from './helpers/matrix.js'
import type { TestRoute } from './helpers/apps.js'

function counted(path: string, cache: TestRoute['cache'] = true): { route: TestRoute; runs: () => number } {
  let runs = 0
  return {
    runs: () => runs,
    route: { method: 'GET', path, cache, handler: (req) => ({ body: { run: ++runs, params: req.params, url: req.url }, headers: { 'content-type': 'application/json', 'x-custom': 'kept' } }) }
  }
}

await matrix(t, async (t, { app }) => {
  await t.test('a miss is stored, the next request is a hit with Age and the same bytes', async (t) => {
    const { route, runs } = counted('/users/:userId', { groups: ['user:userId'] })
    const a = await app([route])
    const first = await a.request('GET', '/users/1')
    t.equal(first.status, 200)
    t.equal(first.headers['cache-status'], 'groupcache; fwd=miss; stored')
    t.equal(first.headers.age, undefined, 'a miss has no Age')
    const second = await a.request('GET', '/users/1')
    t.match(second.headers['cache-status'], /^groupcache; hit; ttl=(59|60)$/)
    t.equal(second.headers.age, '0')
    t.equal(second.body, first.body)
    t.equal(second.headers['content-type'], first.headers['content-type'])
    t.equal(second.headers['x-custom'], 'kept')
    t.equal(second.headers['content-length'], String(Buffer.byteLength(first.body)))
    t.equal(runs(), 1)
    t.equal(a.api.stats().hits, 1)
    t.equal(a.api.stats().misses, 1)
    // Without the cdn option, nothing but these: no CDN headers (nor stray ones) on a miss or a hit.
    const expected = new Set(['content-type', 'content-length', 'x-custom', 'etag', 'cache-status', 'age', 'date', 'connection', 'keep-alive', 'x-powered-by'])
    t.same(Object.keys(first.headers).filter((name) => !expected.has(name)), [], 'the miss')
    t.same(Object.keys(second.headers).filter((name) => !expected.has(name)), [], 'the hit')
  })

  await t.test('binary bodies and empty bodies round-trip', async (t) => {
    const bytes = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80])
    const a = await app([
      { method: 'GET', path: '/bin', cache: true, handler: () => ({ body: bytes, headers: { 'content-type': 'application/octet-stream' } }) },
      { method: 'GET', path: '/empty', cache: { statuses: [200] }, handler: () => ({}) }
    ])
    await a.request('GET', '/bin')
    const hit = await a.request('GET', '/bin')
    t.match(hit.headers['cache-status'], /hit/)
    t.ok(hit.raw.equals(bytes), 'the same bytes')
    t.equal(hit.headers['content-type'], 'application/octet-stream')
    t.equal((await a.request('GET', '/empty')).headers['cache-status'], 'groupcache; fwd=miss; stored')
    const empty = await a.request('GET', '/empty')
    t.match(empty.headers['cache-status'], /hit/)
    t.equal(empty.body, '')
  })

  await t.test('different params are different entries', async (t) => {
    const { route, runs } = counted('/users/:userId', { groups: ['user:userId'] })
    const a = await app([route])
    await a.request('GET', '/users/1')
    const other = await a.request('GET', '/users/2')
    t.equal(other.headers['cache-status'], 'groupcache; fwd=miss; stored')
    t.equal(JSON.parse(other.body).params.userId, '2')
    t.equal(runs(), 2)
  })

  await t.test('HEAD is answered from the GET entry, and a HEAD miss stores nothing', async (t) => {
    const { route, runs } = counted('/posts')
    const a = await app([route])
    const headMiss = await a.request('HEAD', '/posts')
    t.equal(headMiss.headers['cache-status'], 'groupcache; fwd=miss; detail=head')
    t.equal(headMiss.body, '')
    const get = await a.request('GET', '/posts')
    t.equal(get.headers['cache-status'], 'groupcache; fwd=miss; stored', 'the HEAD miss stored no entry')
    const headHit = await a.request('HEAD', '/posts')
    t.match(headHit.headers['cache-status'], /^groupcache; hit; ttl=\d+$/)
    t.equal(headHit.body, '')
    t.equal(headHit.headers['content-length'], String(Buffer.byteLength(get.body)))
    t.equal(runs(), 2)
  })

  await t.test('the query is normalized: params sorted by name, repeated values kept in order', async (t) => {
    const { route, runs } = counted('/items')
    const a = await app([route])
    await a.request('GET', '/items?b=2&a=1')
    t.match((await a.request('GET', '/items?a=1&b=2')).headers['cache-status'], /hit/)
    t.match((await a.request('GET', '/items?a=%31&b=2')).headers['cache-status'], /hit/, 'percent-decoded')
    t.match((await a.request('GET', '/items?a=1&b=2&')).headers['cache-status'], /hit/, 'empty pieces ignored')
    t.equal((await a.request('GET', '/items?a=1&b=3')).headers['cache-status'], 'groupcache; fwd=miss; stored')
    await a.request('GET', '/items?x=1&x=2')
    t.equal((await a.request('GET', '/items?x=2&x=1')).headers['cache-status'], 'groupcache; fwd=miss; stored', 'order of repeated values counts')
    t.equal(runs(), 4)
  })

  await t.test('query: false ignores the query; an allowlist keeps only the params named', async (t) => {
    const none = counted('/none', { query: false })
    const some = counted('/some', { query: ['page'] })
    const a = await app([none.route, some.route])
    await a.request('GET', '/none?x=1')
    t.match((await a.request('GET', '/none?x=2')).headers['cache-status'], /hit/)
    await a.request('GET', '/some?page=1&utm=a')
    t.match((await a.request('GET', '/some?utm=b&page=1')).headers['cache-status'], /hit/)
    t.equal((await a.request('GET', '/some?page=2')).headers['cache-status'], 'groupcache; fwd=miss; stored')
  })

  await t.test('vary: the named request headers are part of the key', async (t) => {
    let runs = 0
    const a = await app([
      { method: 'GET', path: '/greeting', cache: { vary: ['Accept-Language'] }, handler: (req) => ({ body: `${req.headers['accept-language']}:${++runs}`, headers: { vary: 'accept-language' } }) }
    ])
    const en = await a.request('GET', '/greeting', { 'accept-language': 'en' })
    const fr = await a.request('GET', '/greeting', { 'accept-language': 'fr' })
    t.equal(en.body, 'en:1')
    t.equal(fr.body, 'fr:2')
    t.equal((await a.request('GET', '/greeting', { 'accept-language': 'en' })).body, 'en:1')
    t.equal((await a.request('GET', '/greeting')).body, 'undefined:3', 'no header is its own entry')
  })

  await t.test('the host is part of the key, case-insensitively', async (t) => {
    const { route, runs } = counted('/home')
    const a = await app([route])
    await a.request('GET', '/home', { host: 'a.example' })
    t.match((await a.request('GET', '/home', { host: 'A.Example' })).headers['cache-status'], /hit/)
    t.equal((await a.request('GET', '/home', { host: 'b.example' })).headers['cache-status'], 'groupcache; fwd=miss; stored')
    t.equal(runs(), 2)
  })

  await t.test('a client Cache-Control does not force recomputation', async (t) => {
    const { route, runs } = counted('/home')
    const a = await app([route])
    await a.request('GET', '/home')
    const forced = await a.request('GET', '/home', { 'cache-control': 'no-cache', pragma: 'no-cache' })
    t.match(forced.headers['cache-status'], /hit/)
    t.equal(runs(), 1)
  })
})
