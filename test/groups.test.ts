import t from 'tap'
import { compileGroup } from '../lib/core/groups.js'
import { encodeMapping } from '../lib/core/encoding.js'
import { versionKey, versionKeyFromEncoded } from '../lib/core/keys.js'

const params = { userId: '42', blogId: '7' }
const mappingOf = (def: unknown, values: Record<string, unknown> = params) => JSON.parse(compileGroup(def).encode(values)) as [string, string][]

t.test('each form resolves to the mapping DESIGN §2 gives', async (t) => {
  t.same(mappingOf('posts'), [['group', 'posts']])
  t.same(mappingOf('user:userId'), [['group', 'user'], ['userId', '42']])
  t.same(mappingOf('comments:blogId:userId'), [['blogId', '7'], ['group', 'comments'], ['userId', '42']])
  t.same(mappingOf(['userId', 'blogId']), [['blogId', '7'], ['userId', '42']])
  t.same(mappingOf({ id: 'userId' }), [['id', '42']])
  t.same(mappingOf((v: Record<string, unknown>) => ({ tenant: 'acme', userId: v.userId as string })), [['tenant', 'acme'], ['userId', '42']])
})

t.test('a function group gets the request too', async (t) => {
  const group = compileGroup((_v: unknown, req: { headers: Record<string, string> }) => ({ tenant: req.headers['x-tenant'] as string }))
  t.same(JSON.parse(group.encode({}, { headers: { 'x-tenant': 'acme' } })), [['tenant', 'acme']])
  t.equal(group.params, null, 'its params are not known ahead')
})

t.test('two definitions resolving to the same mapping are one group, whatever their form', async (t) => {
  const byName = compileGroup('user:userId').encode({ userId: '42' })
  t.equal(compileGroup(() => ({ group: 'user', userId: 42 })).encode({}), byName, 'function returning a number')
  t.equal(compileGroup('user:userId').encode({ userId: 42 }), byName, '42 and "42" are the same group')
  t.equal(compileGroup(['userId']).encode(params), compileGroup({ userId: 'userId' }).encode(params), 'list and identity remap')
  t.not(compileGroup(['userId']).encode(params), compileGroup({ id: 'userId' }).encode(params), 'a remap renames the key')
  t.equal(compileGroup(['userId', 'blogId']).encode(params), compileGroup(['blogId', 'userId']).encode(params), 'key order does not matter')
  t.equal(encodeMapping({ b: '1', a: '2' }), compileGroup(['a', 'b']).encode({ a: '2', b: '1' }))
})

t.test('the encoding is collision-free where the seed’s md5 of concatenations was not', async (t) => {
  t.not(encodeMapping({ ab: 'c' }), encodeMapping({ a: 'bc' }))
  t.not(versionKey('gc', { ab: 'c' }), versionKey('gc', { a: 'bc' }))
  t.not(encodeMapping({ a: 'b","c' }), encodeMapping({ a: 'b', c: '' }))
  t.equal(
    compileGroup('user:userId').encode({ userId: 'x' }),
    compileGroup(['group', 'userId']).encode({ group: 'user', userId: 'x' }),
    'a list naming "group" resolves to the same mapping as the name form: the same group'
  )
  t.equal(versionKeyFromEncoded('gc', compileGroup('user:userId').encode({ userId: 'x' })), versionKey('gc', { group: 'user', userId: 'x' }))
})

t.test('mapping values must be strings, numbers, booleans or bigints', async (t) => {
  t.same(mappingOf('f:a', { a: true }), [['a', 'true'], ['group', 'f']])
  t.same(mappingOf('f:a', { a: 10n }), [['a', '10'], ['group', 'f']])
  for (const bad of [{}, null, [1], Symbol('s'), () => 1]) {
    t.throws(() => compileGroup('f:a').encode({ a: bad }), { name: 'GroupcacheTypeError', code: 'GC_INVALID_VALUE', message: /group f:a: value of "a" must be a string, number, boolean or bigint/ })
  }
  t.throws(() => compileGroup(() => ({ a: {} as unknown as string })).encode({}), { code: 'GC_INVALID_VALUE', message: /value of "a"/ })
  t.throws(() => compileGroup(() => null as never).encode({}), { code: 'GC_INVALID_VALUE', message: /must return a mapping object, returned null/ })
  t.throws(() => compileGroup(function named() { return [] as never }).encode({}), { message: /group function named: must return a mapping object, returned an array/ })
})

t.test('a missing value is a TypeError naming the group, the param and the values given', async (t) => {
  t.throws(() => compileGroup('comments:blogId:userId').encode({ blogId: 1 }), {
    name: 'GroupcacheTypeError',
    code: 'GC_MISSING_VALUE',
    message: 'group comments:blogId:userId: no value for param "userId" (values given: blogId)'
  })
  t.throws(() => compileGroup({ id: 'userId' }).encode({}), { message: /\(values given: none\)/ })
})
