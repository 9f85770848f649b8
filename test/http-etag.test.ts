import t from 'tap'
import { matrix } from './helpers/matrix.js'

await matrix(t, async (t, { app }) => {
  await t.test('a stored response gets an ETag; a matching If-None-Match on a hit is a 304 with no body', async (t) => {
    const a = await app([{ method: 'GET', path: '/doc', cache: true, handler: () => ({ body: 'hello', headers: { 'cache-control': 'public, max-age=5', 'x-other': 'y' } }) }])
    const miss = await a.request('GET', '/doc')
    const etag = miss.headers.etag as string
    // Express sets its own (weak) ETag on send, and the entry keeps the handler's ETag.
    t.match(etag, /^(W\/)?"[^"]+"$/)
    const notModified = await a.request('GET', '/doc', { 'if-none-match': etag })
    t.equal(notModified.status, 304)
    t.equal(notModified.body, '')
    t.equal(notModified.headers.etag, etag)
    t.equal(notModified.headers['cache-control'], 'public, max-age=5')
    t.equal(notModified.headers['x-other'], undefined, 'a 304 carries only the headers RFC 9110 lists')
    t.match(notModified.headers['cache-status'], /^groupcache; hit; ttl=\d+$/)
    t.ok(notModified.headers.age)
    const changed = await a.request('GET', '/doc', { 'if-none-match': '"something-else"' })
    t.equal(changed.status, 200)
    t.equal(changed.body, 'hello')
    t.equal(changed.headers.etag, etag)
  })

  await t.test('a stored non-2xx response ignores If-None-Match: preconditions apply to 2xx only (RFC 9110 §13.2.1)', async (t) => {
    const a = await app([
      { method: 'GET', path: '/gone', cache: { statuses: [200, 404, 301] }, handler: () => ({ status: 404, body: 'gone', headers: { etag: '"g1"' } }) },
      { method: 'GET', path: '/moved', cache: { statuses: [200, 404, 301] }, handler: () => ({ status: 301, body: 'moved', headers: { etag: '"m1"', location: '/elsewhere' } }) }
    ])
    for (const [path, status, body, etag] of [['/gone', 404, 'gone', '"g1"'], ['/moved', 301, 'moved', '"m1"']] as const) {
      t.equal((await a.request('GET', path)).status, status)
      const hit = await a.request('GET', path, { 'if-none-match': etag })
      t.equal(hit.status, status, `${path}: answered with its stored status, not 304`)
      t.equal(hit.body, body)
      t.match(hit.headers['cache-status'], /^groupcache; hit; ttl=\d+$/)
    }
  })

  await t.test('the handler’s own ETag is kept and matched weakly', async (t) => {
    const a = await app([{ method: 'GET', path: '/tagged', cache: true, handler: () => ({ body: 'v1', headers: { etag: 'W/"v1"' } }) }])
    t.equal((await a.request('GET', '/tagged')).headers.etag, 'W/"v1"')
    t.equal((await a.request('GET', '/tagged', { 'if-none-match': '"v1"' })).status, 304)
  })
})
