import t from 'tap'
import { GenerationalCache } from '../lib/index.js'
import { HttpCache, type Begin, type Miss } from '../lib/http/http-cache.js'
import { LEARNED_VARY_MAX } from '../lib/http/route.js'

/**
 * What lib/http/policy.ts decides about a response, seen through the shared
 * layer both adapters call: a Vary the key cannot hold, a Vary naming headers
 * the key already holds or a hook set, an empty body, a malformed directive.
 */

function layer(config: unknown = true) {
  const gens = new GenerationalCache({ logger: { warn() {}, error() {} } })
  const http = new HttpCache(gens, { ttl: 60, statuses: [200], maxEntryBytes: 1 << 20 })
  const route = http.compile({ pattern: '/items/:id', name: 'GET /items/:id', params: ['id'], cacheable: true }, config)
  return { http, route }
}
const req = (url: string, headers: Record<string, string> = {}) => ({ method: 'GET', url, headers: { host: 'h', ...headers }, params: { id: url.slice('/items/'.length) }, raw: null })
function miss(answer: Begin | Promise<Begin>): Miss {
  if (answer instanceof Promise || answer.kind !== 'miss') throw new Error('expected a synchronous miss')
  return answer
}
function hit(answer: Begin | Promise<Begin>) {
  if (answer instanceof Promise || answer.kind !== 'serve') throw new Error(`expected a synchronous hit, got ${answer instanceof Promise ? 'a promise' : answer.kind}`)
  return answer
}
const STORED = 'groupcache; fwd=miss; stored'
const NOT_STORED_VARY = 'groupcache; fwd=miss; detail=vary'

t.test('Vary: * is never stored, even when a hook set it before the handler', async (t) => {
  const { http, route } = layer()
  const done = await http.finish(miss(http.begin(route, req('/items/1'))), 200, { vary: '*' }, 'body', { vary: '*' })
  t.equal(done.cacheStatus, NOT_STORED_VARY)
  t.match(http.begin(route, req('/items/1')), { kind: 'miss' }, 'the next request runs the handler again')
})

t.test('a Vary: * response teaches the route nothing: the entries it stored before keep hitting', async (t) => {
  const { http, route } = layer()
  t.equal((await http.finish(miss(http.begin(route, req('/items/1'))), 200, {}, 'one')).cacheStatus, STORED)
  t.equal((await http.finish(miss(http.begin(route, req('/items/2'))), 200, { vary: '*' }, 'two')).cacheStatus, NOT_STORED_VARY)
  t.equal(hit(http.begin(route, req('/items/1'))).body?.toString(), 'one', 'the route is keyed as before')
})

t.test(`a Vary naming the declared and the preset headers and ${LEARNED_VARY_MAX} new ones learns only the new ones, and the next response is stored`, async (t) => {
  const { http, route } = layer({ vary: ['x-lang'] })
  const fresh = Array.from({ length: LEARNED_VARY_MAX }, (_, i) => `X-H${i}`)
  const vary = ['Origin', 'X-Lang', ...fresh].join(', ')
  const headers = { 'x-lang': 'en', ...Object.fromEntries(fresh.map((name) => [name.toLowerCase(), '1'])) }
  const first = await http.finish(miss(http.begin(route, req('/items/1', { ...headers, origin: 'https://a.example' }))), 200, { vary }, 'v', { vary: 'Origin' })
  t.equal(first.cacheStatus, NOT_STORED_VARY, 'learning')
  const second = await http.finish(miss(http.begin(route, req('/items/1', { ...headers, origin: 'https://a.example' }))), 200, { vary }, 'v', { vary: 'Origin' })
  t.equal(second.cacheStatus, STORED, `all ${LEARNED_VARY_MAX} new headers fit: Origin and X-Lang took no place among them`)
  t.equal(hit(http.begin(route, req('/items/1', { ...headers, origin: 'https://b.example' }))).body?.toString(), 'v', 'another Origin hits: the preset header splits nothing')
})

t.test('a response with no body at all is stored as an empty entry, not taken for a stream', async (t) => {
  const { http, route } = layer()
  for (const [id, body] of [['1', undefined], ['2', null]] as const) {
    t.equal((await http.finish(miss(http.begin(route, req(`/items/${id}`))), 200, {}, body)).cacheStatus, STORED, `body ${String(body)}`)
    t.equal(hit(http.begin(route, req(`/items/${id}`))).body?.length, 0)
  }
})

t.test('a Cache-Control directive written with a space before its argument still counts', async (t) => {
  const { http, route } = layer()
  const done = await http.finish(miss(http.begin(route, req('/items/1'))), 200, { 'cache-control': 'max-age=60, private ="set-cookie"' }, 'per user')
  t.equal(done.cacheStatus, 'groupcache; fwd=miss; detail=private')
})
