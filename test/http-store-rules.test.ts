import { Readable } from 'node:stream'
import type { Test } from 'tap'
import t from 'tap'
import { matrix } from './helpers/matrix.js'
import type { TestResponse, TestRoute } from './helpers/apps.js'

/** A route answering `response` and counting runs; the second request says whether the first was stored. */
function route(path: string, response: TestResponse | (() => TestResponse), cache: TestRoute['cache'] = true): TestRoute & { runs: number } {
  const r: TestRoute & { runs: number } = {
    runs: 0,
    method: 'GET',
    path,
    cache,
    handler: () => {
      r.runs++
      return typeof response === 'function' ? response() : response
    }
  }
  return r
}

await matrix(t, async (t, { app }) => {
  const notStored = async (t: Test, r: TestRoute & { runs: number }, detail: string, headers: Record<string, string> = {}) => {
    const a = await app([r])
    const first = await a.request('GET', r.path, headers)
    t.equal(first.headers['cache-status'], `groupcache; fwd=miss; detail=${detail}`, 'miss, not stored, saying why')
    const second = await a.request('GET', r.path, headers)
    t.equal(second.headers['cache-status'], `groupcache; fwd=miss; detail=${detail}`, 'still a miss')
    t.equal(r.runs, 2)
    return first
  }

  await t.test('only 200 is stored by default', async (t) => {
    await notStored(t, route('/missing', { status: 404, body: 'nope' }), 'status')
  })

  await t.test('a route can store more statuses', async (t) => {
    const r = route('/gone', { status: 404, body: 'nope' }, { statuses: [200, 404] })
    const a = await app([r])
    t.equal((await a.request('GET', '/gone')).headers['cache-status'], 'groupcache; fwd=miss; stored')
    const hit = await a.request('GET', '/gone')
    t.equal(hit.status, 404)
    t.equal(hit.body, 'nope')
    t.match(hit.headers['cache-status'], /hit/)
  })

  await t.test('a response with Set-Cookie is never stored', async (t) => {
    const first = await notStored(t, route('/cookie', { body: 'x', headers: { 'set-cookie': 'sid=1' } }), 'set-cookie')
    t.same(first.headers['set-cookie'], ['sid=1'], 'the handler still sets its cookie')
  })

  for (const [cc, detail] of [['no-store', 'no-store'], ['private', 'private'], ['max-age=60, Private', 'private'], ['private="set-cookie"', 'private'], ['no-cache', 'no-cache']]) {
    await t.test(`a response with Cache-Control: ${cc} is never stored`, async (t) => {
      await notStored(t, route('/cc', { body: 'x', headers: { 'cache-control': cc as string } }), detail as string)
    })
  }

  await t.test('Cache-Control: public, max-age is stored', async (t) => {
    const r = route('/public', { body: 'x', headers: { 'cache-control': 'public, max-age=60' } })
    const a = await app([r])
    await a.request('GET', '/public')
    const hit = await a.request('GET', '/public')
    t.match(hit.headers['cache-status'], /hit/)
    t.equal(hit.headers['cache-control'], 'public, max-age=60')
  })

  await t.test('a response with Vary: * is never stored', async (t) => {
    await notStored(t, route('/vary-star', { body: 'x', headers: { vary: '*' } }), 'vary')
  })

  await t.test('a Vary the route does not key on is learned: that response is not stored, later ones are, per value', async (t) => {
    const r = route('/vary-lang', () => ({ body: `lang ${r.runs}`, headers: { vary: 'Accept-Language' } }))
    const a = await app([r])
    const en = { 'accept-language': 'en' }
    t.equal((await a.request('GET', '/vary-lang', en)).headers['cache-status'], 'groupcache; fwd=miss; detail=vary', 'learning: not stored')
    t.equal((await a.request('GET', '/vary-lang', en)).headers['cache-status'], 'groupcache; fwd=miss; stored')
    const hit = await a.request('GET', '/vary-lang', en)
    t.match(hit.headers['cache-status'], /hit/)
    t.equal(hit.body, 'lang 2')
    t.equal(hit.headers.vary, 'Accept-Language', 'the stored Vary is replayed')
    const fr = await a.request('GET', '/vary-lang', { 'accept-language': 'fr' })
    t.equal(fr.body, 'lang 3', 'another value of the header is another entry')
    t.equal((await a.request('GET', '/vary-lang')).body, 'lang 4', 'and no header at all another')
    t.equal((await a.request('GET', '/vary-lang', { 'accept-language': 'fr' })).body, 'lang 3')
  })

  await t.test('a streamed payload is never stored', async (t) => {
    const first = await notStored(t, route('/stream', () => ({ body: Readable.from(['chunk-1 ', 'chunk-2']), headers: { 'content-type': 'text/plain' } })), 'streamed')
    t.equal(first.body, 'chunk-1 chunk-2')
  })

  await t.test('a body over maxEntryBytes is not stored', async (t) => {
    await notStored(t, route('/big', { body: 'x'.repeat(2048) }, { maxEntryBytes: 1024 }), 'too-big')
    const small = route('/small', { body: 'x'.repeat(1024) }, { maxEntryBytes: 1024 })
    const a = await app([small])
    t.equal((await a.request('GET', '/small')).headers['cache-status'], 'groupcache; fwd=miss; stored', 'exactly the limit is stored')
  })

  await t.test('a request with Authorization bypasses the cache unless the route opts in', async (t) => {
    const shared = route('/shared', () => ({ body: `run ${shared.runs}` }))
    const a = await app([shared])
    await a.request('GET', '/shared')
    const authed = await a.request('GET', '/shared', { authorization: 'Bearer secret' })
    t.equal(authed.headers['cache-status'], 'groupcache; fwd=bypass; detail=authorization')
    t.equal(authed.body, 'run 2', 'served by the handler, not from the cache')
    t.match((await a.request('GET', '/shared')).headers['cache-status'], /hit/, 'the bypass stored nothing over the entry')

    const optedIn = route('/opted', () => ({ body: 'public' }), { authorization: true })
    const b = await app([optedIn])
    await b.request('GET', '/opted', { authorization: 'Bearer a' })
    t.match((await b.request('GET', '/opted', { authorization: 'Bearer b' })).headers['cache-status'], /hit/)

    const perUser = route('/per-user', () => ({ body: `user ${perUser.runs}` }), { authorization: true, vary: ['authorization'] })
    const c = await app([perUser])
    await c.request('GET', '/per-user', { authorization: 'Bearer a' })
    t.equal((await c.request('GET', '/per-user', { authorization: 'Bearer b' })).body, 'user 2', 'vary on authorization keeps users apart')
  })

  await t.test('Date is not replayed from the entry; custom headers are', async (t) => {
    const old = 'Mon, 01 Jan 2001 00:00:00 GMT'
    const r = route('/headers', { body: 'x', headers: { 'x-trace': 'abc', 'content-language': 'en', date: old } })
    const a = await app([r])
    t.equal((await a.request('GET', '/headers')).headers.date, old, 'the handler’s own response keeps its Date')
    const hit = await a.request('GET', '/headers')
    t.match(hit.headers['cache-status'], /hit/)
    t.equal(hit.headers['x-trace'], 'abc')
    t.equal(hit.headers['content-language'], 'en')
    t.ok(hit.headers.date, 'a hit has a Date')
    t.not(hit.headers.date, old, 'the Date is the hit’s own, not the stored one')
  })
})
