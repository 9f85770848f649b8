import t from 'tap'
import { createHash } from 'node:crypto'
import { entryKey, entryMaterial, entryPrefix, epochKey, EntryKeys, versionKey, versionKeyFromEncoded, VersionKeys } from '../lib/core/keys.js'
import { encodeMapping } from '../lib/core/encoding.js'
import { compileGroup, type CompiledGroup, type GroupValues } from '../lib/core/groups.js'
import { sha1hex } from '../lib/core/encoding.js'
import { ageValue, CACHE_STATUS } from '../lib/http/cache-status.js'

t.test('entry keys are the sha1 of the material, however often they are derived', async (t) => {
  const keys = ['gc:epoch', 'gc:v:a']
  const memo = new EntryKeys()
  const expected = (prefix: string, versions: string[], rk: string) => prefix + sha1hex(entryMaterial(keys, versions, rk))
  t.equal(entryKey('gc:e:', keys, ['1', '2'], 'rk'), expected('gc:e:', ['1', '2'], 'rk'))
  t.equal(memo.derive('gc:e:', keys, ['1', '2'], 'rk'), expected('gc:e:', ['1', '2'], 'rk'))
  t.equal(memo.derive('gc:e:', keys, ['1', '2'], 'rk'), expected('gc:e:', ['1', '2'], 'rk'), 'reused')
  t.equal(memo.derive('gc:e:', [...keys], ['1', '2'], 'rk'), expected('gc:e:', ['1', '2'], 'rk'), 'reused for an equal list')
  t.equal(memo.derive('gc:e:', keys, ['1', '3'], 'rk'), expected('gc:e:', ['1', '3'], 'rk'), 'a bumped version is a new key')
  t.equal(memo.derive('other:e:', keys, ['1', '3'], 'rk'), expected('other:e:', ['1', '3'], 'rk'), 'another prefix')
  t.equal(memo.derive('gc:e:', ['gc:epoch', 'gc:v:b'], ['1', '3'], 'rk'), 'gc:e:' + sha1hex(entryMaterial(['gc:epoch', 'gc:v:b'], ['1', '3'], 'rk')), 'other keys')
  t.equal(memo.derive('gc:e:', ['gc:epoch'], ['1'], 'rk'), 'gc:e:' + sha1hex(entryMaterial(['gc:epoch'], ['1'], 'rk')), 'fewer keys')
  t.equal(memo.derive('gc:e:', ['gc:epoch', 'gc:v:c'], ['1', '3'], 'rk'), 'gc:e:' + sha1hex(entryMaterial(['gc:epoch', 'gc:v:c'], ['1', '3'], 'rk')), 'same length, other key')
  for (let i = 0; i < 50_000; i++) memo.derive('gc:e:', keys, ['1', '2'], `rk${i}`)
  t.ok(memo.bytes <= 4 * 1024 * 1024, `bounded: ${memo.bytes} bytes`)
  t.equal(memo.derive('gc:e:', keys, ['1', '2'], 'rk'), expected('gc:e:', ['1', '2'], 'rk'), 'still right after the memo dropped it')
})

t.test('a new generation of a request key names the entry it replaces, once', async (t) => {
  const memo = new EntryKeys()
  const keys = ['gc:epoch', 'gc:v:a']
  const first = memo.derive('gc:e:', keys, ['1', '2'], 'rk')
  t.equal(memo.takeReplaced(first), undefined, 'the first generation replaces nothing')
  const second = memo.derive('gc:e:', keys, ['1', '3'], 'rk')
  t.equal(memo.takeReplaced(second), first)
  t.equal(memo.takeReplaced(second), undefined, 'handed out once')
  const otherKeys = memo.derive('gc:e:', ['gc:epoch', 'gc:v:b'], ['1', '4'], 'rk')
  t.equal(memo.takeReplaced(otherKeys), undefined, 'other version keys: another entry, not a replacement')
  memo.derive('gc:e:', keys, ['1', '4'], 'rk2')
  const otherPrefix = memo.derive('x:e:', keys, ['1', '5'], 'rk2')
  t.equal(memo.takeReplaced(otherPrefix), undefined, 'another prefix: not a replacement')
  const small = new EntryKeys({ maxBytes: 64 * 1024 })
  for (let i = 0; i < 10_000; i++) small.derive('gc:e:', keys, [String(i), '1'], `rk${i % 50}`)
  t.ok(small.bytes <= 64 * 1024, `replacements are bounded too: ${small.bytes} bytes`)
})

t.test('version keys memoized by encoding are the keys versionKey derives, within their bound', async (t) => {
  const memo = new VersionKeys('gc', 64 * 1024)
  const encoded = encodeMapping({ post: '42' })
  t.equal(memo.fromEncoded(encoded), versionKey('gc', { post: '42' }))
  t.equal(memo.fromEncoded(encoded), versionKeyFromEncoded('gc', encoded), 'reused')
  let wrong = 0
  for (let round = 0; round < 2; round++) for (let i = 0; i < 5000; i++) if (memo.fromEncoded(encodeMapping({ post: String(i) })) !== versionKey('gc', { post: String(i) })) wrong++
  t.equal(wrong, 0, '10,000 lookups through a memo that holds a few hundred are all right')
  t.equal(new VersionKeys('other').fromEncoded(encoded), versionKey('other', { post: '42' }), 'per prefix')
})

t.test('version keys of compiled groups: the memo gives what encoding gives, for every kind of group', async (t) => {
  const memo = new VersionKeys('gc')
  const expect = (group: CompiledGroup, values: GroupValues, request?: unknown) => versionKeyFromEncoded('gc', group.encode(values, request))
  const post = compileGroup('post:id')
  const user = compileGroup('user:id')
  const remap = compileGroup({ post: 'id' })
  const list = compileGroup(['id', 'page'])
  const fn = compileGroup((values: GroupValues, req: { tenant: string }) => ({ tenant: req.tenant, id: String(values.id) }))
  for (let round = 0; round < 2; round++) {
    for (const id of ['42', '43', '']) {
      t.equal(memo.of(post, { id }), expect(post, { id }), `post:id ${JSON.stringify(id)}, round ${round}`)
      t.equal(memo.of(user, { id }), expect(user, { id }), `user:id ${JSON.stringify(id)}: same value, another group, another key`)
      t.equal(memo.of(remap, { id }), expect(remap, { id }), 'a remap naming the same key as post:id')
    }
    t.equal(memo.of(post, { id: 42 }), expect(post, { id: 42 }), 'a number goes through encode (same key as the string)')
    t.equal(memo.of(post, { id: 42 }), memo.of(post, { id: '42' }))
    t.equal(memo.of(list, { id: '1', page: '2' }), expect(list, { id: '1', page: '2' }), 'two params')
    t.equal(memo.of(fn, { id: '1' }, { tenant: 'a' }), expect(fn, { id: '1' }, { tenant: 'a' }), 'a function group sees the request')
    t.not(memo.of(fn, { id: '1' }, { tenant: 'b' }), memo.of(fn, { id: '1' }, { tenant: 'a' }), 'and is never memoized by values alone')
  }
  t.not(memo.of(post, { id: '42' }), memo.of(user, { id: '42' }))
  t.throws(() => memo.of(post, {}), { code: 'GC_MISSING_VALUE' }, 'a missing value is still an error')
  t.throws(() => memo.of(post, { id: {} as never }), { code: 'GC_INVALID_VALUE' }, 'and a bad one')
})

t.test('the key scheme, pinned: known answers computed outside lib/ (a changed scheme is a deliberate, visible change)', async (t) => {
  t.equal(epochKey('gc'), 'gc:epoch')
  t.equal(entryPrefix('gc'), 'gc:e:')
  t.equal(versionKey('gc', { group: 'user', userId: '42' }), 'gc:v:' + createHash('sha1').update('[["group","user"],["userId","42"]]').digest('base64url'))
  const material = 'gc:epoch=1700000000000001\ngc:v:a=7\n["fp","h","/p",""]'
  t.equal(entryMaterial(['gc:epoch', 'gc:v:a'], ['1700000000000001', '7'], '["fp","h","/p",""]'), material)
  t.equal(entryKey('gc:e:', ['gc:epoch', 'gc:v:a'], ['1700000000000001', '7'], '["fp","h","/p",""]'), 'gc:e:' + createHash('sha1').update(material).digest('hex'))
  // Every part of the material moves the key: the versions above all (a bump must orphan).
  const base = entryKey('gc:e:', ['k1', 'k2'], ['1', '2'], 'rk')
  t.not(entryKey('gc:e:', ['k1', 'k2'], ['1', '3'], 'rk'), base, 'last version')
  t.not(entryKey('gc:e:', ['k1', 'k2'], ['2', '2'], 'rk'), base, 'first version')
  t.not(entryKey('gc:e:', ['k1', 'k3'], ['1', '2'], 'rk'), base, 'a version key')
  t.not(entryKey('gc:e:', ['k2', 'k1'], ['2', '1'], 'rk'), base, 'order of the pairs')
  t.not(entryKey('gc:e:', ['k1', 'k2'], ['1', '2'], 'rk2'), base, 'request key')
})

t.test('the version-key memo saves the encoding of a one-param group: encode runs once per group and value', async (t) => {
  const group = compileGroup('post:id')
  let encoded = 0
  const counting: CompiledGroup = { ...group, encode: (values, request) => (encoded++, group.encode(values, request)) }
  const other = compileGroup('user:id')
  let encodedOther = 0
  const countingOther: CompiledGroup = { ...other, encode: (values, request) => (encodedOther++, other.encode(values, request)) }
  const memo = new VersionKeys('gc')
  for (let i = 0; i < 5; i++) {
    memo.of(counting, { id: '42' })
    memo.of(countingOther, { id: '42' })
  }
  t.equal(encoded, 1, 'post:id 42 encoded once')
  t.equal(encodedOther, 1, 'user:id 42 encoded once: groups do not share memo slots')
  memo.of(counting, { id: '43' })
  t.equal(encoded, 2, 'another value is another slot')
  const list = compileGroup(['id', 'page'])
  let encodedList = 0
  const countingList: CompiledGroup = { ...list, encode: (values, request) => (encodedList++, list.encode(values, request)) }
  memo.of(countingList, { id: '1', page: '2' })
  memo.of(countingList, { id: '1', page: '2' })
  t.equal(encodedList, 2, 'two params: encoded each time (the memo is keyed by the encoding then)')
  let encodedNumber = 0
  const countingNumber: CompiledGroup = { ...group, encode: (values, request) => (encodedNumber++, group.encode(values, request)) }
  memo.of(countingNumber, { id: 42 })
  memo.of(countingNumber, { id: 42 })
  t.equal(encodedNumber, 2, 'a non-string value goes through encode, which converts or rejects it')
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
