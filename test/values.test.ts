import t from 'tap'
import { canonicalArguments, canonicalText, decodeValue, encodeValue } from '../lib/core/values.js'
import { GenerationalCache, MemoryStore } from '../lib/index.js'

const key = (value: unknown) => canonicalText(value, 'arguments[0]')

t.test('magic #2 is injective: values a function could tell apart never share a key', async (t) => {
  const bytes = [0, 0, 128, 63]
  const backing = new ArrayBuffer(12)
  new Uint8Array(backing).set([9, 9, 9, 9, 0, 0, 128, 63, 9, 9, 9, 9])
  const distinct: [string, unknown][] = [
    ['set of 1', new Set([1])],
    ['set of 3', new Set([1, 2, 3])],
    ['empty set', new Set()],
    ['set of "1"', new Set(['1'])],
    ['set of two equal objects', new Set([{ a: 1 }, { a: 1 }])],
    ['set of one object', new Set([{ a: 1 }])],
    ['map a→1', new Map([['a', 1]])],
    ['map a→2', new Map([['a', 2]])],
    ['map 1→a', new Map([[1, 'a']])],
    ['empty map', new Map()],
    ['empty object', {}],
    ['empty array', []],
    ['url a', new URL('https://example.com/a')],
    ['url b', new URL('https://example.com/b')],
    ['url a as string', 'https://example.com/a'],
    ['regexp /a/', /a/],
    ['regexp /a/g', /a/g],
    ['regexp /a/i', /a/i],
    ['regexp /b/', /b/],
    ['regexp source as string', 'a'],
    ['Uint8Array', new Uint8Array(bytes)],
    ['Buffer', Buffer.from(bytes)],
    ['Int8Array', new Int8Array(bytes)],
    ['Uint8ClampedArray', new Uint8ClampedArray(bytes)],
    ['Float32Array', new Float32Array(new Uint8Array(bytes).buffer)],
    ['Int32Array', new Int32Array(new Uint8Array(bytes).buffer)],
    ['Uint32Array', new Uint32Array(new Uint8Array(bytes).buffer)],
    ['Int16Array', new Int16Array(new Uint8Array(bytes).buffer)],
    ['Uint16Array', new Uint16Array(new Uint8Array(bytes).buffer)],
    ['Float64Array', new Float64Array(new Uint8Array([...bytes, ...bytes]).buffer)],
    ['BigInt64Array', new BigInt64Array(new Uint8Array([...bytes, ...bytes]).buffer)],
    ['BigUint64Array', new BigUint64Array(new Uint8Array([...bytes, ...bytes]).buffer)],
    ['DataView', new DataView(new Uint8Array(bytes).buffer)],
    ['ArrayBuffer', new Uint8Array(bytes).buffer],
    ['Uint8Array of other bytes', new Uint8Array([0, 0, 128, 64])],
    ['date 0', new Date(0)],
    ['date 1', new Date(1)],
    ['invalid date', new Date('x')],
    ['date 0 as string', new Date(0).toISOString()],
    ['boxed 1', new Number(1)],
    ['boxed 2', new Number(2)],
    ['1', 1],
    ['"1"', '1'],
    ['boxed "1"', new String('1')],
    ['boxed false', new Boolean(false)],
    ['boxed true', new Boolean(true)],
    ['false', false],
    ['boxed 1n', Object(1n)],
    ['1n', 1n],
    ['0', 0],
    ['-0', -0],
    ['NaN', NaN],
    ['"NaN"', 'NaN'],
    ['Infinity', Infinity],
    ['-Infinity', -Infinity],
    ['null', null],
    ['undefined', undefined],
    ['[1]', [1]],
    ['sparse [ , 1]', [, 1]],
    ['[undefined, 1]', [undefined, 1]],
    ['[null, 1]', [null, 1]],
    ['{ a: undefined }', { a: undefined }],
    ['{ a: 1 }', { a: 1 }],
    ['{ "a.b": 1 }', { 'a.b': 1 }],
    ['{ a: { b: 1 } }', { a: { b: 1 } }]
  ]
  const seen = new Map<string, string>()
  for (const [label, value] of distinct) {
    const text = key(value)
    t.equal(seen.get(text), undefined, `${label} has a key of its own`)
    seen.set(text, label)
  }
  t.equal(key(new Float32Array(backing, 4, 1)), key(new Float32Array(new Uint8Array(bytes).buffer)), 'a view is its own bytes, not its backing buffer')
  t.not(key(new Uint8Array(backing, 0, 4)), key(new Uint8Array(backing, 4, 4)), 'two views of one buffer at other offsets')
})

t.test('values that are equal have one key', async (t) => {
  t.equal(key({ b: 1, a: [1, { d: 2, c: 3 }] }), key({ a: [1, { c: 3, d: 2 }], b: 1 }), 'object keys are sorted')
  t.equal(key(new Set([3, 1, 2])), key(new Set([1, 2, 3])), 'a Set is a set: insertion order does not count')
  t.equal(key(new Map<unknown, unknown>([['b', 2], [1, 'a']])), key(new Map<unknown, unknown>([[1, 'a'], ['b', 2]])), 'a Map is keyed by its keys, not their order')
  t.equal(key(new URL('HTTPS://Example.com:443/a')), key(new URL('https://example.com/a')), 'two URLs with one href')
  t.equal(key(Object.assign(Object.create(null) as object, { a: 1 })), key({ a: 1 }), 'a null-prototype object is a plain object')
  const shared = { id: 1 }
  t.equal(key({ x: shared, y: shared }), key({ x: { id: 1 }, y: { id: 1 } }), 'a value reached twice (not a cycle) is fine')
  t.equal(key(new Date('2020-01-01T00:00:00.000Z')), key(new Date(Date.UTC(2020, 0, 1))))
})

t.test('keys of values the old encoding already told apart stay the same', async (t) => {
  t.equal(
    canonicalText({ a: 1, b: 's', c: [true, null], d: 10n, e: new Date(0), f: Buffer.from('x') }, 'values'),
    '["o",[["a",["n",1]],["b",["s","s"]],["c",["a",[["b",true],["z"]]]],["d",["i","10"]],["e",["d","1970-01-01T00:00:00.000Z"]],["f",["x","eA=="]]]]'
  )
})

t.test('the text of every kind is pinned: a change orphans every entry a fleet has cached', async (t) => {
  const value = [
    -0, 0, NaN, undefined, [, 1], new Set(['b', 'a']), new Map([[2, 'x']]), new URL('https://a.example/p?q'), /x/gi,
    new Float32Array([1]), new DataView(new Uint8Array([1]).buffer), new Uint8Array([1]).buffer, new Date(NaN), new Number(1)
  ]
  t.equal(
    canonicalText(value, 'v'),
    '["a",[["n","-0"],["n",0],["n","NaN"],["u"],["a",[["_"],["n",1]]],["S",["[\\"s\\",\\"a\\"]","[\\"s\\",\\"b\\"]"]],' +
      '["m",["[[\\"n\\",2],[\\"s\\",\\"x\\"]]"]],["url","https://a.example/p?q"],["re","x","gi"],["t","Float32Array","AACAPw=="],' +
      '["t","DataView","AQ=="],["ab","AQ=="],["d","invalid"],["box",["n",1]]]]'
  )
})

t.test('Sets and Maps: every insertion order gives one key', async (t) => {
  const items = ['d', 'b', 'a', 'c', 'e']
  const orders: string[][] = [[]]
  for (const item of items) {
    const next: string[][] = []
    for (const order of orders) for (let i = 0; i <= order.length; i++) next.push([...order.slice(0, i), item, ...order.slice(i)])
    orders.splice(0, orders.length, ...next)
  }
  t.equal(orders.length, 120)
  t.equal(new Set(orders.map((order) => key(new Set(order)))).size, 1, 'Set')
  t.equal(new Set(orders.map((order) => key(new Map(order.map((k) => [k, k.toUpperCase()]))))).size, 1, 'Map')
})

t.test('what cannot be encoded faithfully is a TypeError naming the argument path', async (t) => {
  class Role {
    constructor(readonly role: string) {}
  }
  class Tags extends Map {}
  const cyclic: Record<string, unknown> = { a: 1 }
  cyclic.self = cyclic
  const cyclicArray: unknown[] = [1]
  cyclicArray.push([cyclicArray])
  const withSymbolKey = { a: 1, [Symbol('s')]: 2 }
  const withExtra = Object.assign([1, 2], { note: 'x' })
  const cases: [string, unknown, RegExp][] = [
    ['class instance', { filter: { role: new Role('guest') } }, /arguments\[0\]\.filter\.role cannot be part of a cache key: it is a Role instance/],
    ['function', { fn: () => 1 }, /arguments\[0\]\.fn cannot be part of a cache key: it is a function/],
    ['symbol', [Symbol('x')], /arguments\[0\]\[0\] cannot be part of a cache key: it is a symbol/],
    ['WeakMap', { w: new WeakMap() }, /arguments\[0\]\.w .*WeakMap/],
    ['WeakSet', new WeakSet(), /arguments\[0\] .*WeakSet/],
    ['Promise', { p: Promise.resolve(1) }, /arguments\[0\]\.p .*Promise/],
    ['cyclic object', cyclic, /arguments\[0\]\.self cannot be part of a cache key: it is a cycle/],
    ['cyclic array', cyclicArray, /arguments\[0\]\[1\]\[0\] .*cycle/],
    ['Map subclass', new Tags(), /arguments\[0\] .*Tags instance/],
    ['symbol-keyed field', withSymbolKey, /arguments\[0\] .*symbol keys/],
    ['array with extra fields', withExtra, /arguments\[0\] .*array with fields/],
    ['map key', new Map([[() => 1, 1]]), /arguments\[0\]\.entries\(\)\[0\]\[0\] .*function/],
    ['map value', new Map([['k', Symbol('v')]]), /arguments\[0\]\.entries\(\)\[0\]\[1\] .*symbol/],
    ['set element', new Set([1, new Role('x')]), /arguments\[0\]\.values\(\)\[1\] .*Role instance/],
    ['boxed symbol', Object(Symbol('s')), /arguments\[0\]\.valueOf\(\) .*symbol/],
    ['shared memory', new SharedArrayBuffer(4), /arguments\[0\] .*SharedArrayBuffer/],
    ['view on shared memory', new Uint8Array(new SharedArrayBuffer(4)), /arguments\[0\] .*shared memory/],
    ['typed array subclass', new (class Bytes extends Uint8Array {})(2), /arguments\[0\] .*Bytes instance/],
    ['anonymous class', [new (class {})()], /arguments\[0\]\[0\] .*it is a class instance/],
    ['object without constructor', Object.create(Object.create(null) as object) as object, /arguments\[0\] .*it is a class instance/],
    ['array with a symbol field', Object.assign([1], { [Symbol('s')]: 1 }), /arguments\[0\] .*array with fields/],
    ['class with an odd name', new (Object.defineProperty(class {}, 'name', { value: 42 }))(), /arguments\[0\] .*it is a class instance/],
    ['field name starting with a digit', { '1a': Symbol('s') }, /arguments\[0\]\["1a"\] /],
    ['field name ending oddly', { 'a-': Symbol('s') }, /arguments\[0\]\["a-"\] /],
    ['odd field name', { 'a b': () => 1 }, /arguments\[0\]\["a b"\] .*function/]
  ]
  for (const [label, value, message] of cases) {
    t.throws(() => key(value), { name: 'GroupcacheTypeError', code: 'GC_INVALID_VALUE', message }, label)
  }
})

t.test('positional arguments: the same text as an array, errors named by their index', async (t) => {
  t.equal(canonicalArguments([1, 'a'], 0), canonicalText([1, 'a'], 'arguments'))
  t.equal(canonicalArguments([], 3), '["a",[]]')
  t.throws(() => canonicalArguments([1, () => 1], 0), { message: /^arguments\[1\] cannot be part of a cache key: it is a function$/ })
  t.throws(() => canonicalArguments([() => 1], 2), { message: /^arguments\[2\] / }, 'after a values object, the index counts it')
  t.throws(() => key({ $ok_1: { a: Symbol('s') } }), { message: /^arguments\[0\]\.\$ok_1\.a cannot/ }, 'identifier fields use a dot')
})

t.test('encodeValue refuses what a get could not tell from a miss, or cannot clone', async (t) => {
  t.throws(() => encodeValue(undefined, 'set'), { name: 'GroupcacheError', code: 'GC_NOT_SERIALIZABLE', message: /^set: undefined cannot be cached/ })
  t.throws(() => encodeValue({ f() {} }, 'result'), { code: 'GC_NOT_SERIALIZABLE', message: /^result: the value cannot be stored: .*could not be cloned/ })
  const bytes = encodeValue(null, 'set')
  t.equal(bytes[0], 2, 'a format byte leads the entry')
  t.equal(decodeValue(bytes), null)
  t.equal(decodeValue(Buffer.from([1, ...bytes.subarray(1)])), undefined, 'another format is a miss')
  t.equal(decodeValue(Buffer.from([2, 255, 255])), undefined, 'bytes V8 cannot read are a miss')
})

t.test('a decoded value is a copy: writing into it changes neither the bytes nor the next read', async (t) => {
  const value = {
    buf: Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]),
    u8: new Uint8Array([1, 2, 3, 4]),
    f64: new Float64Array([1.5, 2.5]),
    list: [1, 2]
  }
  const bytes = encodeValue(value, 'set')
  const before = Buffer.from(bytes)
  const first = decodeValue(bytes) as typeof value
  t.same(first, value)
  first.buf[0] = 99
  first.u8[0] = 99
  first.f64[0] = 99
  first.list.push(3)
  t.same(bytes, before, 'the stored bytes are untouched')
  t.same(decodeValue(bytes), value, 'the next read is the original')
})

t.test('through the cache: the colliding calls of issue 14 have their own entries or a clear error', async (t) => {
  const cache = new GenerationalCache({ store: new MemoryStore() })
  let runs = 0
  const countOf = cache.wrap(async function countOf(items: Set<number>) {
    runs++
    return items.size
  })
  t.equal(await countOf(new Set([1])), 1)
  t.equal(await countOf(new Set([1, 2, 3])), 3, 'a Set of 3 is not the cached Set of 1')
  t.equal(await countOf(new Set([3, 2, 1])), 3)
  t.equal(runs, 2, 'an equal Set is a hit')
  class Filter {
    constructor(readonly role: string) {}
  }
  const view = cache.wrap(async function view(q: { filter: Filter }) {
    return q.filter.role === 'admin' ? 'admin view' : 'guest view'
  })
  await t.rejects(view({ filter: new Filter('admin') }), { code: 'GC_INVALID_VALUE', message: /arguments\[0\]\.filter cannot be part of a cache key: it is a Filter instance/ })
  await t.rejects(cache.get(['g'], { filter: new Filter('guest') }), { code: 'GC_INVALID_VALUE', message: /values\.filter .*Filter instance/ })
  const second = cache.wrap(async function second(_a: number, _b: { f: () => void }) {
    return 1
  })
  await t.rejects(second(1, { f() {} }), { message: /arguments\[1\]\.f .*function/ }, 'positional arguments keep their index')
  const third = cache.wrap(async function third(_a: { id: number }, _b: unknown) {
    return 1
  })
  await t.rejects(third({ id: 1 }, new WeakMap()), { message: /arguments\[1\] .*WeakMap/ }, 'after a values object too')
})
