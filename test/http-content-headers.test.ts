import t from 'tap'
import { GenerationalCache, MemoryStore } from '../lib/index.js'
import { HttpCache, type HttpRequest } from '../lib/http/http-cache.js'

/**
 * What the shared HTTP layer stores of a response's headers when it is told
 * which were already there when the handler started (`before`: middleware
 * that runs on hits too, such as CORS): those, unchanged, are left out; of
 * Vary, only the tokens added after, trimmed and kept as written.
 */
t.test('headers set before the handler are not stored unless changed; Vary keeps only the tokens added after', async (t) => {
  const http = new HttpCache(new GenerationalCache({ store: new MemoryStore() }), { ttl: 60, statuses: [200], maxEntryBytes: 1 << 20 })
  t.teardown(() => http.close())
  const route = http.compile({ pattern: '/doc', name: 'GET /doc', params: [], cacheable: true }, { group: 'doc', vary: ['x-tenant', 'accept-language'] })
  const request: HttpRequest = { method: 'GET', url: '/doc', headers: { host: 'test', 'x-tenant': 'a', 'accept-language': 'en' }, params: {}, raw: null }
  const miss = await http.begin(route, request)
  if (miss.kind !== 'miss') throw new Error('expected a miss')
  const before = { vary: 'Origin', 'access-control-allow-origin': '*', 'x-changed': 'before' }
  const written = {
    vary: ' Origin , X-Tenant ,, Accept-Language ',
    'access-control-allow-origin': '*',
    'x-changed': 'after',
    'content-type': 'text/plain'
  }
  t.equal((await http.finish(miss, 200, written, 'doc', before)).cacheStatus, 'groupcache; fwd=miss; stored')
  const hit = await http.begin(route, request)
  if (hit.kind !== 'serve') throw new Error(`expected a hit, got ${hit.kind}`)
  const { etag, ...stored } = hit.headers
  t.match(etag, /^"[\w-]+"$/, 'an ETag of the body is added')
  t.same(stored, { vary: 'X-Tenant, Accept-Language', 'x-changed': 'after', 'content-type': 'text/plain' })
})
