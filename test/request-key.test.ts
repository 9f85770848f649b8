import t from 'tap'
import { acceptedCodings, canonicalQuery, normalizeQuery, requestKey, varyValue } from '../lib/http/request-key.js'
import { compileRoute } from '../lib/http/route.js'
import { GenerationalCache } from '../lib/index.js'
import { createHttpCache } from '../lib/http/options.js'

t.test('normalizeQuery', async (t) => {
  t.equal(normalizeQuery('', true), '')
  t.equal(normalizeQuery('&&', true), '')
  t.equal(normalizeQuery('flag&b=2&a=1', true), '[["a","1"],["b","2"],["flag",""]]', 'a param without = has the empty value')
  t.equal(normalizeQuery('a=2&b=1&a=1', true), '[["a","2"],["a","1"],["b","1"]]', 'repeated names keep their order')
  t.equal(normalizeQuery('q=a+b&r=%2B', true), '[["q","a b"],["r","+"]]', '+ is a space, %2B a plus')
  t.equal(normalizeQuery('a=1&utm=x', new Set(['a'])), '[["a","1"]]')
  t.equal(normalizeQuery('utm=x', new Set(['a'])), '')
  t.not(normalizeQuery('q=%zz+a', true), normalizeQuery('q=%25zz%2Ba', true), 'a malformed component is never equal to a decoded one')
  t.not(normalizeQuery('q=%e9', true), normalizeQuery('q=%25e9', true))
  t.equal(normalizeQuery('q=%zz', true), normalizeQuery('q=%zz', true))
  t.equal(normalizeQuery('b=1&%zz=2&a=3', true), '[[["%zz"],"2"],["a","3"],["b","1"]]', 'a malformed name sorts by its raw text')
  t.equal(normalizeQuery('%zz=2', new Set(['%zz'])), '', 'and never matches an allowlist')
})

t.test('canonicalQuery: the parsed query in a form two different queries never share', async (t) => {
  t.equal(canonicalQuery({}, true), '')
  t.equal(canonicalQuery(null, true), '')
  t.equal(canonicalQuery({ b: '1', a: '2' }, true), canonicalQuery({ a: '2', b: '1' }, true), 'names sorted')
  t.not(canonicalQuery({ q: '%zz a' }, true), canonicalQuery({ q: '%zz+a' }, true))
  t.not(canonicalQuery({ a: ['1', '2'] }, true), canonicalQuery({ a: ['2', '1'] }, true), 'repeated values keep their order')
  t.not(canonicalQuery({ a: ['1', '2'] }, true), canonicalQuery({ a: '1,2' }, true), 'an array is not its joined string')
  t.not(canonicalQuery({ a: { b: '1' } }, true), canonicalQuery({ a: '[object Object]' }, true), 'nested objects (qs) are structural')
  t.equal(canonicalQuery({ a: { y: '1', x: '2' } }, true), canonicalQuery({ a: { x: '2', y: '1' } }, true), 'nested keys sorted')
  t.not(canonicalQuery({ a: 1 }, true), canonicalQuery({ a: '1' }, true), 'a custom parser’s number is not a string')
  t.equal(canonicalQuery({ a: '1', utm: 'x' }, new Set(['a'])), canonicalQuery({ a: '1' }, true), 'the allowlist filters names')
  t.equal(canonicalQuery({ utm: 'x' }, new Set(['a'])), '')
  let deep: unknown = 'x'
  for (let i = 0; i < 30; i++) deep = { d: deep }
  t.type(canonicalQuery({ deep }, true), 'string', 'a very deep query is cut off, not a stack overflow')
})

t.test('Accept-Encoding is keyed as the set of codings it accepts', async (t) => {
  t.equal(acceptedCodings('gzip, deflate, br'), 'br,deflate,gzip')
  t.equal(acceptedCodings('br;q=0.9, GZIP;q=1, deflate'), 'br,deflate,gzip', 'weights and case do not split')
  t.equal(acceptedCodings('gzip;q=0, br'), 'br', 'q=0 means not accepted')
  t.equal(acceptedCodings('gzip; q=0.000, identity'), 'identity')
  t.equal(acceptedCodings(''), '')
  t.equal(acceptedCodings('*, gzip,,'), '*,gzip')
  t.equal(varyValue('accept-encoding', ['gzip', 'br']), 'br,gzip')
  t.equal(varyValue('accept-language', ' en ,fr '), 'en, fr')
  t.equal(varyValue('accept-language', undefined), null)
})

t.test('requestKey', async (t) => {
  const gens = new GenerationalCache()
  const route = compileRoute(gens, { ttl: 60, statuses: [200], maxEntryBytes: 1000 }, { pattern: '/p', name: 'GET /p', params: [], cacheable: true }, { vary: ['x-a'] })
  const key = (url: string, headers: Record<string, string | string[]>) => requestKey(route, { url, headers })
  t.equal(key('/p', {}), key('/p', { host: '' }), 'no Host is the empty host')
  t.not(key('/p', { 'x-a': '' }), key('/p', {}), 'an empty header differs from none')
  t.equal(key('/p', { 'x-a': ['1', '2'] }), key('/p', { 'x-a': '1, 2' }), 'repeated headers join as one list')
  t.not(key('/p?', {}), key('/p?x=1', {}))
  t.equal(key('/p?', {}), key('/p', {}))
  t.equal(requestKey(route, { url: '/p', headers: { host: 'A.example' } }), requestKey(route, { url: '/p', headers: {}, host: 'a.EXAMPLE' }), 'the resolved host wins over Host, lower-cased')
  t.not(requestKey(route, { url: '/p?a=1', headers: {}, query: {} }), key('/p?a=1', {}), 'the parsed query wins over the raw one')
  route.learnedVary.push('accept-encoding')
  t.not(key('/p', { 'accept-encoding': 'gzip' }), key('/p', { 'accept-encoding': 'br' }), 'a learned header splits the key')
  t.equal(key('/p', { 'accept-encoding': 'gzip, br' }), key('/p', { 'accept-encoding': 'br;q=0.5, gzip' }))
  const plain = compileRoute(gens, { ttl: 60, statuses: [200], maxEntryBytes: 1000 }, { pattern: '/p', name: 'GET /p', params: [], cacheable: true }, {})
  plain.learnedVary.push('x-a')
  t.not(requestKey(plain, { url: '/p', headers: { 'x-a': '1' } }), requestKey(route, { url: '/p', headers: { 'x-a': '1' } }), 'declared and learned never collide')
})

t.test('routes that differ only by constraints never share a fingerprint', async (t) => {
  const gens = new GenerationalCache()
  const info = { pattern: '/p', name: 'GET /p', params: [], cacheable: true }
  const fp = (constraints?: Record<string, unknown>) => compileRoute(gens, { ttl: 60, statuses: [200], maxEntryBytes: 1000 }, { ...info, constraints }, {}).fingerprint
  t.not(fp({ version: '1.0.0' }), fp({ version: '2.0.0' }))
  t.not(fp({ host: /a/ }), fp({ host: /b/ }), 'regexps compare by source')
  t.not(fp({ host: 'a' }), fp({ host: /a/ }))
  t.not(fp({ x: 1 }), fp({ x: '1' }))
  t.not(fp(), fp({ version: '1.0.0' }))
  t.equal(fp({ a: '1', b: '2' }), fp({ b: '2', a: '1' }))
})

t.test('groupNames: the readable names of the groups a request depends on', async (t) => {
  const http = createHttpCache({}, undefined)
  const compile = (pattern: string, params: string[], config: object) => http.compile({ pattern, name: `GET ${pattern}`, params, cacheable: true }, config)
  t.same(http.groupNames(compile('/users/:userId', ['userId'], { groups: ['user:userId', 'users'] }), { userId: '42' }, {}), ['user:42', 'users'])
  t.same(http.groupNames(compile('/users/:userId', ['userId'], {}), { userId: '42' }, {}), ['route=/users/:userId,userId=42'], 'the view group')
  t.same(http.groupNames(compile('/list/:page?', ['page'], { groups: ['list:page'] }), {}, {}), ['list:'], 'an absent optional param is empty')
  await http.gens.close()
})
