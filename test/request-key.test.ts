import t from 'tap'
import { normalizeQuery, requestKey } from '../lib/http/request-key.js'
import { compileRoute } from '../lib/http/route.js'
import { GenerationalCache } from '../lib/index.js'

t.test('normalizeQuery', async (t) => {
  t.equal(normalizeQuery('', true), '')
  t.equal(normalizeQuery('&&', true), '')
  t.equal(normalizeQuery('flag&b=2&a=1', true), '[["a","1"],["b","2"],["flag",""]]', 'a param without = has the empty value')
  t.equal(normalizeQuery('a=2&b=1&a=1', true), '[["a","2"],["a","1"],["b","1"]]', 'repeated names keep their order')
  t.equal(normalizeQuery('q=a+b&r=%2B', true), '[["q","a b"],["r","+"]]', '+ is a space, %2B a plus')
  t.equal(normalizeQuery('a=1&utm=x', new Set(['a'])), '[["a","1"]]')
  t.equal(normalizeQuery('utm=x', new Set(['a'])), '')
})

t.test('requestKey', async (t) => {
  const gens = new GenerationalCache()
  const route = compileRoute(gens, { ttl: 60, statuses: [200], maxEntryBytes: 1000 }, { pattern: '/p', name: 'GET /p', params: [], cacheable: true }, { vary: ['x-a'] })
  const key = (url: string, headers: Record<string, string | string[]>) => requestKey(route, url, headers)
  t.equal(key('/p', {}), key('/p', { host: '' }), 'no Host is the empty host')
  t.not(key('/p', { 'x-a': '' }), key('/p', {}), 'an empty header differs from none')
  t.equal(key('/p', { 'x-a': ['1', '2'] }), key('/p', { 'x-a': '1, 2' }), 'repeated headers join as one list')
  t.not(key('/p?', {}), key('/p?x=1', {}))
  t.equal(key('/p?', {}), key('/p', {}))
})
