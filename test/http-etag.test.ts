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

  await t.test('the handler’s own ETag is kept and matched weakly', async (t) => {
    const a = await app([{ method: 'GET', path: '/tagged', cache: true, handler: () => ({ body: 'v1', headers: { etag: 'W/"v1"' } }) }])
    t.equal((await a.request('GET', '/tagged')).headers.etag, 'W/"v1"')
    t.equal((await a.request('GET', '/tagged', { 'if-none-match': '"v1"' })).status, 304)
  })
})
