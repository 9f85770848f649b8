import t from 'tap'
import { entryKey, entryMaterial } from '../lib/core/keys.js'
import { sha1hex } from '../lib/core/encoding.js'
import { ageValue, CACHE_STATUS } from '../lib/http/cache-status.js'

t.test('entry keys are the sha1 of the material, however often they are derived', async (t) => {
  const keys = ['gc:epoch', 'gc:v:a']
  const expected = (prefix: string, versions: string[], rk: string) => prefix + sha1hex(entryMaterial(keys, versions, rk))
  t.equal(entryKey('gc:e:', keys, ['1', '2'], 'rk'), expected('gc:e:', ['1', '2'], 'rk'))
  t.equal(entryKey('gc:e:', keys, ['1', '2'], 'rk'), expected('gc:e:', ['1', '2'], 'rk'), 'reused')
  t.equal(entryKey('gc:e:', keys, ['1', '3'], 'rk'), expected('gc:e:', ['1', '3'], 'rk'), 'a bumped version is a new key')
  t.equal(entryKey('other:e:', keys, ['1', '3'], 'rk'), expected('other:e:', ['1', '3'], 'rk'), 'another prefix')
  t.equal(entryKey('gc:e:', ['gc:epoch', 'gc:v:b'], ['1', '3'], 'rk'), 'gc:e:' + sha1hex(entryMaterial(['gc:epoch', 'gc:v:b'], ['1', '3'], 'rk')), 'other keys')
  t.equal(entryKey('gc:e:', ['gc:epoch'], ['1'], 'rk'), 'gc:e:' + sha1hex(entryMaterial(['gc:epoch'], ['1'], 'rk')), 'fewer keys')
  for (let i = 0; i < 5000; i++) entryKey('gc:e:', keys, ['1', '2'], `rk${i}`)
  t.equal(entryKey('gc:e:', keys, ['1', '2'], 'rk'), expected('gc:e:', ['1', '2'], 'rk'), 'still right after the memo was emptied')
})

t.test('Cache-Status and Age values', async (t) => {
  t.equal(CACHE_STATUS.hit(59), 'groupcache; hit; ttl=59')
  t.equal(CACHE_STATUS.hit(59), 'groupcache; hit; ttl=59')
  t.equal(CACHE_STATUS.hit(100_000), 'groupcache; hit; ttl=100000')
  t.equal(CACHE_STATUS.hit(-5), 'groupcache; hit; ttl=-5')
  t.equal(CACHE_STATUS.bypass('store-timeout'), 'groupcache; fwd=bypass; detail=store-timeout')
  t.equal(ageValue(0), '0')
  t.equal(ageValue(0), '0')
  t.equal(ageValue(100_000), '100000')
})
