import t from 'tap'
import { GenerationalCache, MemoryStore, type Logger } from '../lib/index.js'
import { FaultyStore } from './helpers/faulty-store.js'
import { recordChannels } from './helpers/observe.js'
import { storeKits } from './helpers/stores.js'

const record = recordChannels

const quiet: Logger = { warn() {}, error() {}, info() {} }
let counter = 0
const prefix = () => `ofc${process.pid}x${++counter}`

for (const kit of await storeKits(t)) {
  await t.test(`${kit.name}: get, set, wrap and bumps of the function cache are published`, async (t) => {
    const p = prefix()
    const seen = record(t, p)
    const cache = new GenerationalCache({ store: kit.make(), prefix: p, logger: quiet })
    t.teardown(() => cache.close())

    t.equal(await cache.get(['nav', 'nav_portal:userId'], { userId: 1, page: 2 }), undefined)
    t.equal(await cache.set(['nav', 'nav_portal:userId'], { userId: 1, page: 2 }, '<html>', { ttl: 60 }), true)
    t.equal(await cache.get(['nav', 'nav_portal:userId'], { userId: 1, page: 2 }), '<html>')
    t.match(seen.lookups, [
      { route: 'function cache', method: 'CALL', store: kit.name, groups: ['nav', 'nav_portal:1'], outcome: 'miss' },
      { route: 'function cache', method: 'CALL', groups: ['nav', 'nav_portal:1'], outcome: 'hit', url: /page/ }
    ])
    t.equal(seen.lookups.length, 2, 'set is a store, not a lookup')
    for (const lookup of seen.lookups) t.type(lookup.duration, 'number')
    t.same(seen.stores, [{ prefix: p, route: 'function cache', stored: true, bytes: seen.stores[0]?.stored === true ? seen.stores[0].bytes : -1, ttl: 60 }])
    t.ok(seen.stores[0]?.stored === true && seen.stores[0].bytes > 0, 'the bytes written')

    let runs = 0
    const render = cache.wrap(async ({ userId }: { userId: number }) => `page of ${userId} (${++runs})`, { name: 'render', groups: ['user:userId'], ttl: 30 })
    await render({ userId: 7 })
    await render({ userId: 7 })
    t.equal(runs, 1)
    t.match(seen.lookups.slice(2), [
      { route: 'wrap render', groups: ['function=render', 'user:7'], outcome: 'miss' },
      { route: 'wrap render', groups: ['function=render', 'user:7'], outcome: 'hit' }
    ])
    t.match(seen.stores.slice(1), [{ route: 'wrap render', stored: true, ttl: 30 }])

    await cache.invalidate(['user:userId'], { userId: 7 }, { grace: 5 })
    await cache.invalidate(['user:userId'], { userId: 7 })
    await cache.bind(['user:userId', 'blog:blogId']).invalidate({ userId: 8 })
    await render.clear()
    const listened: string[][] = []
    cache.onBump((event) => void listened.push([...event.groups]))
    await cache.bind(['user:userId']).invalidate({ userId: 9 })
    t.same(
      seen.bumps.map((b) => [b.groups, b.soft]),
      [
        [['user:7'], true],
        [['user:7'], false],
        [['user:8'], false],
        [['function=render'], false],
        [['user:9'], false]
      ],
      'bound and wrapped bumps carry readable names, as CDN purgers need'
    )
    t.same(listened, [['user:9']])
  })

  await t.test(`${kit.name}: identical calls collapse, a soft bump serves stale, a delete cancels the store`, async (t) => {
    const p = prefix()
    const seen = record(t, p)
    const cache = new GenerationalCache({ store: kit.make(), prefix: p, logger: quiet })
    t.teardown(() => cache.close())
    let release!: () => void
    let runs = 0
    const slow = async () => {
      runs++
      await new Promise<void>((resolve) => (release = resolve))
      return `value ${runs}`
    }
    const leader = cache.getOrSet(['g'], {}, slow)
    while (runs === 0) await new Promise((resolve) => setImmediate(resolve))
    const follower = cache.getOrSet(['g'], {}, slow)
    // Released only once the follower joined (a Redis lookup answers later than the leader's).
    while (cache.getStats().collapsed === 0) await new Promise((resolve) => setImmediate(resolve))
    release()
    t.same(await Promise.all([leader, follower]), ['value 1', 'value 1'])
    t.same(
      seen.lookups.map((c) => c.outcome),
      ['miss', 'collapsed']
    )

    await cache.invalidate(['g'], {}, { grace: 30 })
    const recompute = cache.getOrSet(['g'], {}, slow)
    while (runs === 1) await new Promise((resolve) => setImmediate(resolve))
    t.equal(await cache.getOrSet(['g'], {}, slow), 'value 1', 'the previous generation during the grace')
    t.match(seen.lookups.slice(2), [{ outcome: 'miss' }, { outcome: 'stale', detail: 'soft-bump' }])

    // A delete while the recompute runs: its result is not stored, and that is published.
    await cache.delete(['g'], {})
    release()
    t.equal(await recompute, 'value 2')
    t.match(seen.stores, [{ stored: true }, { stored: false, reason: 'cancelled', route: 'function cache' }])
  })
}

t.test('store faults: rate-limited logs with the call, a fault event, and the lookup answered as a bypass', async (t) => {
  const p = prefix()
  const seen = record(t, p)
  const errors: [unknown, string][] = []
  const store = new FaultyStore(new MemoryStore())
  const cache = new GenerationalCache({ store, prefix: p, logger: { warn() {}, error: (obj, msg) => void errors.push([obj, String(msg)]) } })
  t.teardown(() => cache.close())
  const twice = cache.wrap(async (n: number) => n * 2, { name: 'twice' })
  store.setFault('error')
  t.equal(await twice(21), 42, 'served uncached')
  t.equal(await twice(21), 42)
  t.equal(await cache.get(['g']), undefined)
  t.equal(await cache.set(['g'], {}, 1), false)

  t.match(seen.lookups, [
    { route: 'wrap twice', outcome: 'bypass', detail: 'store-error' },
    { route: 'wrap twice', outcome: 'bypass', detail: 'store-error' },
    { route: 'function cache', outcome: 'bypass', detail: 'store-error' }
  ])
  t.equal(seen.lookupErrors.length, 3, 'the store error is published on the trace')
  t.match(seen.faults, [
    { what: 'lookup', route: 'wrap twice' },
    { what: 'lookup', route: 'wrap twice' },
    { what: 'lookup', route: 'function cache' },
    { what: 'set', route: 'function cache' }
  ])
  t.match(seen.stores, [{ stored: false, reason: 'store-error', route: 'function cache' }])
  t.equal(cache.getStats().errors, 4, 'every fault counted')
  t.equal(errors.length, 1, 'logged once per interval, not once per call')
  t.match(errors[0], [{ route: 'wrap twice', err: Error }, 'groupcache: store lookup failed; served uncached'])
})

t.test('a call refused by a pending bump is a bypass, not a fault', async (t) => {
  const p = prefix()
  const seen = record(t, p)
  const store = new FaultyStore(new MemoryStore())
  const cache = new GenerationalCache({ store, prefix: p, logger: quiet, breaker: false })
  t.teardown(() => cache.close())
  store.setFault('error')
  t.equal(await cache.invalidate(['g']), false, 'kept for retry')
  store.setFault('none')
  t.equal(await cache.getOrSet(['g'], {}, () => 'fresh'), 'fresh')
  t.equal(await cache.set(['g'], {}, 'x'), false)
  t.match(seen.lookups, [{ outcome: 'bypass', detail: 'pending-bump' }])
  t.same(seen.lookupErrors, [], 'no store error on the trace')
  t.match(seen.stores, [{ stored: false, reason: 'pending-bump' }])
  t.same(
    seen.faults.map((f) => f.what),
    ['bump'],
    'only the bump itself was a fault'
  )
})

t.test('group names are computed for lookup subscribers only', async (t) => {
  const cache = new GenerationalCache({ prefix: prefix(), logger: quiet })
  t.teardown(() => cache.close())
  let named = 0
  const bumpTarget = cache.bumpTarget.bind(cache)
  cache.bumpTarget = (...args) => {
    named++
    return bumpTarget(...args)
  }
  const wrapped = cache.wrap(async ({ id }: { id: number }) => id, { name: 'plain', groups: ['item:id'] })
  t.equal(await wrapped({ id: 1 }), 1)
  t.equal(await cache.get(['item:id'], { id: 1 }), undefined)
  t.equal(named, 0, 'nobody subscribed: no names')
  const seen = record(t, cache.prefix)
  t.equal(await wrapped({ id: 1 }), 1)
  t.equal(named, 1, 'one name per group for a subscriber')
  t.match(seen.lookups, [{ groups: ['function=plain', 'item:1'], outcome: 'hit' }])
})

t.test('a computed value the store refuses to write is answered, published as not stored, and the fault reported', async (t) => {
  const p = prefix()
  const seen = record(t, p)
  const store = new FaultyStore(new MemoryStore())
  store.set = async () => {
    throw new Error('write refused')
  }
  const cache = new GenerationalCache({ store, prefix: p, logger: quiet, breaker: false })
  t.teardown(() => cache.close())
  t.equal(await cache.getOrSet(['g'], {}, () => 'computed'), 'computed', 'the caller still gets its value')
  t.equal(await cache.get(['g']), undefined, 'nothing was stored')
  t.match(seen.stores, [{ route: 'function cache', stored: false, reason: 'store-error' }])
  t.match(seen.faults, [{ what: 'set', route: 'function cache', error: { message: 'write refused' } }])
  t.equal(cache.getStats().errors, 1)
})

t.test('a lookup that timed out, or that the open breaker refused, names why it was served uncached', async (t) => {
  const p = prefix()
  const seen = record(t, p)
  const store = new FaultyStore(new MemoryStore())
  const cache = new GenerationalCache({ store, prefix: p, logger: quiet, timeout: 20, breaker: { failures: 1, cooldown: 60_000 } })
  t.teardown(() => cache.close())
  store.setFault('hang')
  t.equal(await cache.getOrSet(['g'], {}, () => 'computed'), 'computed')
  t.equal(await cache.get(['g']), undefined)
  t.match(
    seen.lookups.map((l) => l.detail),
    ['store-timeout', 'store-unavailable']
  )
})
