import t from 'tap'
import { GenerationalCache, MemoryStore } from '../lib/index.js'
import { storeKits } from './helpers/stores.js'
import { FaultyStore } from './helpers/faulty-store.js'
import { gate } from './helpers/matrix.js'

const silent = { warn() {}, error() {} }
let n = 0

for (const kit of await storeKits(t)) {
  t.test(`function cache on ${kit.name}`, async (t) => {
    const cache = new GenerationalCache({ store: kit.make(), ttl: 3600, prefix: `fc${process.pid}x${++n}` })
    t.teardown(() => cache.close())

    await t.test('get/set/invalidate/delete (gen_cache direct methods)', async (t) => {
      const groups = ['nav', 'nav_portal:userId']
      t.equal(await cache.get(groups, { userId: 1 }), undefined)
      t.equal(await cache.set(groups, { userId: 1 }, '<html>', { ttl: 60 }), true)
      t.equal(await cache.get(groups, { userId: 1 }), '<html>')
      t.equal(await cache.get(groups, { userId: '1' }), '<html>', '1 and "1" are one group')
      t.equal(await cache.get(groups, { userId: 2 }), undefined)
      await cache.set(groups, { userId: 2 }, 'two')
      await cache.invalidate(['nav_portal:userId'], { userId: 1 })
      t.equal(await cache.get(groups, { userId: 1 }), undefined, 'bumped')
      t.equal(await cache.get(groups, { userId: 2 }), 'two', 'other users untouched')
      await cache.invalidate(['nav'])
      t.equal(await cache.get(groups, { userId: 2 }), undefined, 'a shared group reaches everyone')
      await cache.set(groups, { userId: 3 }, 'three')
      await cache.delete(groups, { userId: 3 })
      t.equal(await cache.get(groups, { userId: 3 }), undefined, 'delete drops the one entry')
    })

    await t.test('magic #2: values no group consumes are part of the key, in any order', async (t) => {
      const groups = ['page:userId']
      await cache.set(groups, { userId: 1, page: 2, sort: 'new' }, 'p2')
      t.equal(await cache.get(groups, { sort: 'new', page: 2, userId: 1 }), 'p2')
      t.equal(await cache.get(groups, { userId: 1, page: 3, sort: 'new' }), undefined)
      t.equal(await cache.get(groups, { userId: 1, page: '2', sort: 'new' }), undefined, 'a key value keeps its type: 2 is not "2"')
      t.equal(await cache.get(groups, { userId: 1, page: 2 }), undefined)
      const odd = [Infinity, NaN, 10n, undefined, null, true, new Date('x'), new Date(0), Buffer.from('x'), new Uint8Array([1, 2]), [1], { a: 1 }]
      for (const [i, v] of odd.entries()) await cache.set(['odd'], { v }, i)
      for (const [i, v] of odd.entries()) t.equal(await cache.get(['odd'], { v }), i, `key value ${String(v)} has its own entry`)
    })

    await t.test('a function group reads the values it wants; the rest are the key', async (t) => {
      const tenant = (values: { tenant?: unknown }) => ({ tenant: String(values.tenant) })
      await cache.set([tenant], { tenant: 'acme', q: 1 }, 'acme q1')
      t.equal(await cache.get([tenant], { q: 1, tenant: 'acme' }), 'acme q1')
      await cache.invalidate([tenant], { tenant: 'acme' })
      t.equal(await cache.get([tenant], { tenant: 'acme', q: 1 }), undefined)
    })

    await t.test('values round-trip as copies: JSON types, Date, Buffer', async (t) => {
      const value = { n: 1, s: 'x', a: [1, { b: null }], t: true, d: new Date('2020-01-02T03:04:05Z'), buf: Buffer.from([0, 255]) }
      await cache.set(['copies'], {}, value)
      const first = (await cache.get<typeof value>(['copies']))!
      t.same(first, value)
      t.ok(first.d instanceof Date)
      t.ok(Buffer.isBuffer(first.buf))
      first.a.push(99)
      first.n = 2
      t.same(await cache.get(['copies']), value, 'mutating a returned value never changes the cache')
      await cache.set(['null'], {}, null)
      t.equal(await cache.get(['null']), null)
    })

    await t.test('an unserializable value is a clear error at set', async (t) => {
      await t.rejects(cache.set(['bad'], {}, { f() {} }), { code: 'GC_NOT_SERIALIZABLE', message: /set: the value cannot be stored: .*could not be cloned/ })
      await t.rejects(cache.set(['bad'], {}, undefined), { code: 'GC_NOT_SERIALIZABLE', message: /undefined cannot be cached/ })
      t.equal(await cache.get(['bad']), undefined, 'nothing was written')
    })

    await t.test('missing values and bad definitions name the group and the param', async (t) => {
      await t.rejects(cache.get(['nav_portal:userId'], {}), { name: 'GroupcacheTypeError', code: 'GC_MISSING_VALUE', message: /group nav_portal:userId: no value for param "userId"/ })
      await t.rejects(cache.set(['x:a'], { b: 1 }, 1), { code: 'GC_MISSING_VALUE', message: /values given: b/ })
      await t.rejects(cache.invalidate([42 as never]), { code: 'GC_INVALID_GROUP', message: /group 42: must be a string/ })
      await t.rejects(cache.get('nav' as never), { code: 'GC_INVALID_GROUP', message: /groups must be an array/ })
      await t.rejects(cache.get(['k'], { f: () => 1 }), { code: 'GC_INVALID_VALUE', message: /values.f cannot be part of a cache key: it is a function/ })
      await t.rejects(cache.set(['k'], {}, 1, { ttl: -1 }), { code: 'GC_INVALID_OPTION', message: /option ttl/ })
    })

    await t.test('getOrSet computes once for concurrent callers, and each gets its own copy', async (t) => {
      const release = gate()
      let runs = 0
      const compute = async () => {
        runs++
        await release.wait
        return { list: [1, 2] }
      }
      const collapsed = cache.getStats().collapsed
      const calls = Array.from({ length: 10 }, () => cache.getOrSet(['gos'], { id: 1 }, compute))
      // Every caller's lookup has answered and joined (a fixed sleep flaked on a loaded machine with Redis).
      while (cache.getStats().collapsed - collapsed < 9) await new Promise((resolve) => setTimeout(resolve, 5))
      release.open()
      const results = await Promise.all(calls)
      t.equal(runs, 1)
      for (const r of results) t.same(r, { list: [1, 2] })
      results[1]!.list.push(3)
      t.same(results[2], { list: [1, 2] }, 'callers do not share one object')
      t.same(await cache.getOrSet(['gos'], { id: 1 }, compute), { list: [1, 2] })
      t.equal(runs, 1, 'then served from the cache')
    })

    await t.test('bind (CustomUseGenCache)', async (t) => {
      const custom = cache.bind(['customgenz:userId', 'customgenz:blogId'])
      t.equal(await custom.get({ blogId: 17, userId: 123, cacheKey: 5 }), undefined)
      await custom.set({ blogId: 17, userId: 123, cacheKey: 5 }, 'first')
      await custom.set({ blogId: 18, userId: 124, cacheKey: 5 }, 'other')
      t.equal(await custom.get({ blogId: 17, userId: 123, cacheKey: 5 }), 'first')
      t.equal(await custom.get({ blogId: 17, userId: 123, cacheKey: 6 }), undefined, 'cacheKey is part of the key')
      t.equal(await custom.getOrSet({ blogId: 1, userId: 1 }, () => 'computed'), 'computed')
      t.equal(await custom.get({ blogId: 1, userId: 1 }), 'computed')
      await custom.invalidate({ userId: 123 })
      t.equal(await custom.get({ blogId: 17, userId: 123, cacheKey: 5 }), undefined, 'only the user group was needed')
      t.equal(await custom.get({ blogId: 18, userId: 124, cacheKey: 5 }), 'other')
      await custom.delete({ blogId: 18, userId: 124, cacheKey: 5 })
      t.equal(await custom.get({ blogId: 18, userId: 124, cacheKey: 5 }), undefined)
      await t.rejects(custom.invalidate({ nothing: 1 }), { code: 'GC_MISSING_VALUE', message: /group customgenz:userId: no value for param "userId"/ })
      t.same(custom.groups, ['customgenz:userId', 'customgenz:blogId'])
    })

    await t.test('wrap (@gen_cache.wrap)', async (t) => {
      const calls: unknown[] = []
      const foobar = cache.wrap(
        async ({ userId, page }: { userId: number; page: number; debug?: boolean }) => {
          calls.push([userId, page])
          return `user ${userId} page ${page}`
        },
        { name: 'foobar', groups: ['project', 'foo_per_user:userId'], ttl: 3600, exclude: ['debug'] }
      )
      t.equal(await foobar({ userId: 53, page: 2 }), 'user 53 page 2')
      t.equal(await foobar({ page: 2, userId: 53, debug: true }), 'user 53 page 2', 'excluded fields are not in the key')
      t.equal(await foobar({ userId: 999, page: 2 }), 'user 999 page 2')
      t.equal(calls.length, 2)
      await cache.invalidate(['foo_per_user:userId'], { userId: 999 })
      await foobar({ userId: 53, page: 2 })
      await foobar({ userId: 999, page: 2 })
      t.same(calls, [[53, 2], [999, 2], [999, 2]], 'magic #1: only user 999 was invalidated')
      await foobar.invalidate({ userId: 53, page: 2 })
      await foobar({ userId: 53, page: 2 })
      t.equal(calls.length, 4, 'invalidate drops this result')
      await foobar({ userId: 53, page: 3 })
      await foobar.clear()
      await foobar({ userId: 53, page: 3 })
      t.equal(calls.length, 6, 'clear orphans every result of the function')
      t.equal(foobar.name, 'cached foobar')
      const bare = Object.assign(Object.create(null) as Record<string, unknown>, { userId: 7, page: 1 })
      t.equal(await foobar(bare as never), 'user 7 page 1', 'an object without prototype is a values object too')
    })

    await t.test('wrap: positional arguments are part of the key; a rejected call is not cached', async (t) => {
      let runs = 0
      const add = cache.wrap(async function add(a: number, b: number) {
        runs++
        if (a < 0) throw new Error('negative')
        return a + b
      })
      t.equal(await add(1, 2), 3)
      t.equal(await add(1, 2), 3)
      t.equal(await add(2, 1), 3)
      t.equal(runs, 2)
      await t.rejects(add(-1, 0), { message: 'negative' })
      await t.rejects(add(-1, 0), { message: 'negative' })
      t.equal(runs, 4, 'the rejection was not cached')
    })

    await t.test('wrap: concurrent identical calls run the function once; a rejection reaches them all', async (t) => {
      const release = gate()
      let runs = 0
      const slow = cache.wrap(
        async (_: { id: number }) => {
          runs++
          await release.wait
          if (runs === 1) throw new Error('first fails')
          return 'ok'
        },
        { name: 'slow' }
      )
      const first = Array.from({ length: 5 }, () => slow({ id: 1 }))
      await new Promise((resolve) => setTimeout(resolve, 20))
      release.open()
      for (const r of await Promise.allSettled(first)) t.match(r, { status: 'rejected', reason: { message: 'first fails' } })
      t.equal(runs, 1)
      t.equal(await slow({ id: 1 }), 'ok')
    })

    await t.test('wrap: an unserializable result is a clear error', async (t) => {
      const bad = cache.wrap(async () => ({ f: () => 1 }), { name: 'bad' })
      await t.rejects(bad(), { code: 'GC_NOT_SERIALIZABLE', message: /result: the value cannot be stored/ })
    })
  })
}

t.test('wrap needs a function and a name', async (t) => {
  const cache = new GenerationalCache()
  t.throws(() => cache.wrap(42 as never), { code: 'GC_INVALID_OPTION', message: /expected a function/ })
  t.throws(() => cache.wrap(async () => 1), { code: 'GC_INVALID_OPTION', message: /option name is required for an anonymous function/ })
  t.throws(() => cache.wrap(async function named() {}, { ttl: 0 }), { code: 'GC_INVALID_OPTION', message: /wrap named: option ttl/ })
  t.throws(() => cache.wrap(async function named() {}, { groups: ['a:'] }), { code: 'GC_INVALID_GROUP', message: /wrap named: group a:/ })
})

t.test('enabled: false (ignore_locally) never reads or writes entries, but still bumps', async (t) => {
  const store = new MemoryStore()
  const on = new GenerationalCache({ store })
  const off = new GenerationalCache({ store, enabled: false })
  await on.set(['g'], {}, 'cached')
  t.equal(await off.get(['g']), undefined)
  t.equal(await off.set(['g'], {}, 'x'), false)
  let runs = 0
  const f = off.wrap(async function f() {
    return ++runs
  })
  await f()
  await f()
  t.equal(runs, 2)
  t.equal(await off.getOrSet(['g'], {}, () => 'computed'), 'computed')
  t.equal(await off.bind(['g']).getOrSet({}, () => 'bound'), 'bound')
  await off.invalidate(['g'])
  t.equal(await on.get(['g']), undefined, 'the bump reached the store')
  const wrapOff = on.wrap(async function g() {
    return ++runs
  }, { enabled: false })
  t.not(await wrapOff(), await wrapOff(), 'a wrap can be switched off alone')
  t.throws(() => new GenerationalCache({ enabled: 'no' as never }), { code: 'GC_INVALID_OPTION', message: /option enabled must be a boolean/ })
  // A typo is an error naming it, not an option silently ignored.
  t.throws(() => new GenerationalCache({ tll: 5 } as never), { code: 'GC_INVALID_OPTION', message: /^GenerationalCache: unknown option "tll" \(known: store, prefix, ttl, .*maxInflight\)$/ })
  t.throws(() => new GenerationalCache(null as never), { code: 'GC_INVALID_OPTION', message: 'GenerationalCache: options must be an object, got null' })
})

t.test('the function cache fails open and logs misses at debug level', async (t) => {
  const debug: unknown[] = []
  const errors: unknown[] = []
  const faulty = new FaultyStore(new MemoryStore())
  const cache = new GenerationalCache({ store: faulty, logger: { warn() {}, error: (o) => errors.push(o), debug: (o) => debug.push(o) } })
  t.equal(await cache.get(['g'], { id: 1 }), undefined)
  t.match(debug, [{ requestKey: /^\["fn",/ }], 'log_misses: a debug line per miss')
  faulty.setFault('error')
  t.equal(await cache.get(['g']), undefined)
  t.equal(await cache.set(['g'], {}, 1), false)
  await cache.delete(['g'])
  t.equal(await cache.getOrSet(['g'], {}, () => 'computed'), 'computed')
  const w = cache.wrap(async function w() {
    return 'ran'
  })
  t.equal(await w(), 'ran')
  t.equal(cache.getStats().errors, 5, 'each fault counted')
  t.match(errors, [{ route: 'function cache', err: { message: /store is down/ } }], 'logged once: the rest are counted until the interval ends')
  faulty.setFault('none')
  const realSet = faulty.set.bind(faulty)
  faulty.set = async () => {
    throw new Error('write refused')
  }
  t.equal(await cache.getOrSet(['g2'], {}, () => 'still answered'), 'still answered')
  faulty.set = realSet
  faulty.setFault('error')
  await cache.invalidate(['g'])
  faulty.setFault('none')
  t.equal(await cache.get(['g']), undefined, 'a pending bump is a bypass, not an error')
  t.equal(cache.getStats().bypasses, 1)
  await cache.close()
})

t.test('an entry that is not a value (or unreadable) is a miss', async (t) => {
  const store = new MemoryStore()
  const cache = new GenerationalCache({ store })
  await cache.set(['g'], {}, 'x')
  const found = await cache.lookup(cache.versionKeys(['g']), JSON.stringify(['fn', '', '["o",[]]', '["a",[]]']))
  t.ok(found.entry, 'found the entry through the key scheme')
  await store.set(found.entryKey, Buffer.from([1, 2, 3]), 1000)
  t.equal(await cache.get(['g']), undefined, 'wrong format byte')
  await store.set(found.entryKey, Buffer.from([2, 255, 255]), 1000)
  t.equal(await cache.get(['g']), undefined, 'bytes V8 cannot read')
  t.equal(await cache.getOrSet(['g'], {}, () => 'recomputed'), 'recomputed')
})
