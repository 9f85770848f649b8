import t from 'tap'
import { GenerationalCache } from '../lib/index.js'
import { HttpCache, type Begin, type Miss } from '../lib/http/http-cache.js'
import { LEARNED_VARY_MAX } from '../lib/http/route.js'

/** The shared layer alone (both adapters call it): what a response's Vary does to the route's key. */
function layer() {
  const warned: string[] = []
  const gens = new GenerationalCache({ logger: { warn: (_obj, msg) => void warned.push(String(msg)), error() {} } })
  return { http: new HttpCache(gens, { ttl: 60, statuses: [200], maxEntryBytes: 1 << 20 }), warned }
}
const req = (headers: Record<string, string>) => ({ method: 'GET', url: '/v', headers: { host: 'h', ...headers }, params: {}, raw: null })
function miss(answer: Begin | Promise<Begin>): Miss {
  if (answer instanceof Promise || answer.kind !== 'miss') throw new Error('expected a synchronous miss')
  return answer
}

t.test('a Vary naming a header the route already keys on is stored at once, learning nothing', async (t) => {
  const { http } = layer()
  const route = http.compile({ pattern: '/v', name: 'GET /v', params: [], cacheable: true }, { vary: ['x-lang'] })
  const done = await http.finish(miss(http.begin(route, req({ 'x-lang': 'en' }))), 200, { vary: 'X-Lang' }, 'english')
  t.equal(done.cacheStatus, 'groupcache; fwd=miss; stored')
  t.same(route.learnedVary, [])
  const hit = http.begin(route, req({ 'x-lang': 'en' }))
  t.match(hit, { kind: 'serve', body: Buffer.from('english') })
  t.match(http.begin(route, req({ 'x-lang': 'fr' })), { kind: 'miss' }, 'another value, another entry')
})

t.test(`past ${LEARNED_VARY_MAX} learned headers a route stops learning, says so once per header, and does not store`, async (t) => {
  const { http, warned } = layer()
  const route = http.compile({ pattern: '/v', name: 'GET /v', params: [], cacheable: true }, true)
  const names = Array.from({ length: LEARNED_VARY_MAX + 1 }, (_, i) => `x-h${i}`)
  const done = await http.finish(miss(http.begin(route, req({}))), 200, { vary: names.join(', ') }, 'varies a lot')
  t.equal(done.cacheStatus, 'groupcache; fwd=miss; detail=vary')
  t.equal(route.learnedVary.length, LEARNED_VARY_MAX, 'bounded')
  t.equal(warned.length, 1)
  t.match(warned[0], /varies on more than/)
})

t.test('a header present before the handler, unchanged, is not content whatever the case it is written in', async (t) => {
  const { http } = layer()
  const route = http.compile({ pattern: '/v', name: 'GET /v', params: [], cacheable: true }, true)
  const done = await http.finish(miss(http.begin(route, req({}))), 200, { 'X-Rate': '9', 'X-Own': 'handler' }, 'body', { 'x-rate': '9' })
  t.equal(done.cacheStatus, 'groupcache; fwd=miss; stored')
  const hit = http.begin(route, req({}))
  if (hit instanceof Promise || hit.kind !== 'serve') throw new Error('expected a hit')
  t.equal(hit.headers['x-own'], 'handler', "the handler's header is stored")
  t.equal(hit.headers['x-rate'], undefined, 'the live one is not')
})

t.test('routes differing only by their constraints never share entries, whatever the kind of constraint value', async (t) => {
  const { http } = layer()
  const info = (constraints: Record<string, unknown> | undefined) => ({ pattern: '/v', name: 'GET /v', params: [], cacheable: true, constraints })
  const variants = [undefined, { version: '1.0.0' }, { version: '2.0.0' }, { host: /^a\./ }, { host: /^b\./ }, { tier: 1 }, { tier: 2 }, { tier: { gold: true } }, { tier: () => 'a' }, { tier: () => 'b' }]
  const fingerprints = variants.map((c) => http.compile(info(c), true).fingerprint)
  t.equal(new Set(fingerprints).size, variants.length, 'one fingerprint per variant')
  t.equal(http.compile(info({ tier: 1 }), true).fingerprint, fingerprints[5], 'stable for equal constraints')
})

t.test('a Vary learned by one request is not learned twice by a request that began before it', async (t) => {
  const { http } = layer()
  const route = http.compile({ pattern: '/v', name: 'GET /v', params: [], cacheable: true }, true)
  const a = miss(http.begin(route, { ...req({}), url: '/v?a' }))
  const b = miss(http.begin(route, { ...req({}), url: '/v?b' }))
  t.equal((await http.finish(a, 200, { vary: 'x-h' }, 'a')).cacheStatus, 'groupcache; fwd=miss; detail=vary')
  t.equal((await http.finish(b, 200, { vary: 'x-h' }, 'b')).cacheStatus, 'groupcache; fwd=miss; detail=vary', 'b was keyed without it')
  t.same(route.learnedVary, ['x-h'], 'learned once')
})

t.test("a Vary present before the handler (CORS's Origin) splits nothing and the response is stored", async (t) => {
  const { http } = layer()
  const route = http.compile({ pattern: '/v', name: 'GET /v', params: [], cacheable: true }, true)
  const done = await http.finish(miss(http.begin(route, req({ origin: 'https://a.example' }))), 200, { vary: 'Origin' }, 'body', { vary: 'Origin' })
  t.equal(done.cacheStatus, 'groupcache; fwd=miss; stored')
  t.same(route.learnedVary, [])
  const hit = http.begin(route, req({ origin: 'https://b.example' }))
  if (hit instanceof Promise || hit.kind !== 'serve') throw new Error('expected a hit for another origin')
  t.equal(hit.headers.vary, undefined, 'the preset Vary is not part of the stored response')
})

t.test('a Vary given as an array keeps only the tokens added after the handler started', async (t) => {
  const { http } = layer()
  const route = http.compile({ pattern: '/v', name: 'GET /v', params: [], cacheable: true }, { vary: ['x-lang'] })
  const done = await http.finish(miss(http.begin(route, req({ 'x-lang': 'en' }))), 200, { vary: ['Origin', 'X-Lang'] }, 'body', { vary: 'Origin' })
  t.equal(done.cacheStatus, 'groupcache; fwd=miss; stored')
  const hit = http.begin(route, req({ 'x-lang': 'en' }))
  if (hit instanceof Promise || hit.kind !== 'serve') throw new Error('expected a hit')
  t.equal(hit.headers.vary, 'X-Lang', 'the handler’s token is stored, the preset one is not')
})

t.test('a response not stored for another reason (its status) learns nothing from its Vary', async (t) => {
  const { http } = layer()
  const route = http.compile({ pattern: '/v', name: 'GET /v', params: [], cacheable: true }, true)
  const done = await http.finish(miss(http.begin(route, req({}))), 404, { vary: 'x-h' }, 'not found')
  t.equal(done.cacheStatus, 'groupcache; fwd=miss; detail=status')
  t.same(route.learnedVary, [], 'nothing learned: the route still keys as before')
  t.equal((await http.finish(miss(http.begin(route, req({ 'x-h': 'a' }))), 200, {}, 'found')).cacheStatus, 'groupcache; fwd=miss; stored')
  t.match(http.begin(route, req({ 'x-h': 'b' })), { kind: 'serve' }, 'one entry for every value of the header')
})
