import t from 'tap'
import { GenerationalCache, GroupcacheError, MemoryStore, RedisStore, type LookupResult, type Store } from '../lib/index.js'
import { Generations } from '../lib/core/generations.js'
import { FaultyStore } from './helpers/faulty-store.js'
import { RedisCluster, startRedis } from './helpers/redis.js'

const PREFIX = 'gc:e:'

interface Kit {
  name: string
  make(): Store
  /** Whether a grace record key exists (Redis only), to see a hard bump drop it. */
  graceKeyExists?(versionKey: string): Promise<boolean>
}

const server = await startRedis()
const client = server.client()
const cluster = await RedisCluster.start()
const clusterClient = cluster.client()
t.teardown(async () => {
  client.disconnect()
  clusterClient.disconnect()
  await server.stop()
  await cluster.stop()
})

const kits: Kit[] = [
  { name: 'memory', make: () => new MemoryStore() },
  { name: 'redis', make: () => new RedisStore({ client }), graceKeyExists: async (key) => (await client.exists(`${key}:g`)) === 1 },
  { name: 'redis cluster', make: () => new RedisStore({ client: clusterClient }) }
]

let n = 0
for (const kit of kits) {
  t.test(`store soft bumps on ${kit.name}`, async (t) => {
    t.clock.enter()
    const store = kit.make()
    const keys = [`s${++n}:epoch`, `s${n}:v:a`, `s${n}:v:b`]
    const [, a, b] = keys as [string, string, string]
    const first = await store.lookup(keys, 'req', PREFIX)
    await store.set(first.entryKey, Buffer.from('gen 1'), 60_000)

    t.equal(await store.lookupGrace?.(keys, first.versions, 'req', PREFIX), undefined, 'no soft bump: nothing to read')
    await store.bump([a], { graceMs: 30_000 })
    const second = await store.lookup(keys, 'req', PREFIX)
    t.not(second.entryKey, first.entryKey, 'the version moved on: new requests compute fresh')
    t.equal(second.entry, undefined)
    const grace = await store.lookupGrace?.(keys, second.versions, 'req', PREFIX)
    t.equal(grace?.entryKey, first.entryKey, 'during the grace, the previous generation is found')
    t.equal(grace?.entry?.toString(), 'gen 1')
    t.equal(grace?.until, (grace?.bumpedAt as number) + 30_000)

    // Two keys soft-bumped: both are taken back; a key bumped hard in between is not.
    await store.bump([b], { graceMs: 10_000 })
    const third = await store.lookup(keys, 'req', PREFIX)
    t.equal((await store.lookupGrace?.(keys, third.versions, 'req', PREFIX))?.entryKey, first.entryKey, 'both soft-bumped keys go back one version')
    t.equal((await store.lookupGrace?.(keys, third.versions, 'other', PREFIX))?.entry, undefined, 'another request key has no old entry')

    t.clock.advance(10_001)
    const onlyA = await store.lookupGrace?.(keys, third.versions, 'req', PREFIX)
    t.ok(onlyA !== undefined && onlyA.entryKey !== first.entryKey, "b's grace ended: only a goes back")
    t.clock.advance(20_000)
    t.equal(await store.lookupGrace?.(keys, third.versions, 'req', PREFIX), undefined, 'after the grace, nothing')

    // A hard bump after a soft one ends the grace at once (and drops the record with its INCR on a single node).
    await store.bump([a], { graceMs: 30_000 })
    const soft = await store.lookup(keys, 'req', PREFIX)
    t.ok(await store.lookupGrace?.(keys, soft.versions, 'req', PREFIX), 'soft bump again')
    t.equal(await kit.graceKeyExists?.(a), kit.graceKeyExists === undefined ? undefined : true)
    await store.bump([a])
    const hard = await store.lookup(keys, 'req', PREFIX)
    t.equal(await store.lookupGrace?.(keys, hard.versions, 'req', PREFIX), undefined, 'a hard bump ends the grace')
    t.equal(await kit.graceKeyExists?.(a), kit.graceKeyExists === undefined ? undefined : false, 'the record is gone')
    // Even with the old versions: the record is gone or names another version.
    t.equal(await store.lookupGrace?.(keys, soft.versions, 'req', PREFIX), undefined, 'no record applies to a version it did not set')

    // A soft bump of a key never seeded has no previous generation.
    const fresh = [`s${n}:epoch`, `s${n}:v:new`]
    await store.bump([fresh[1] as string], { graceMs: 30_000 })
    const seeded = await store.lookup(fresh, 'req', PREFIX)
    t.equal((await store.lookupGrace?.(fresh, seeded.versions, 'req', PREFIX))?.entry, undefined, 'nothing was stored under a version never seen')
    await store.close()
  })
}

t.test('a memory version evicted and reseeded does not revive its grace record', async (t) => {
  const store = new MemoryStore({ maxVersions: 2 })
  const keys = ['m:epoch', 'm:v:a']
  await store.lookup(keys, 'req', PREFIX)
  await store.bump(['m:v:a'], { graceMs: 30_000 })
  // Two other keys push both versions out; m:v:a is reseeded above every version handed out.
  await store.lookup(['m:v:x', 'm:v:y'], 'req', PREFIX)
  const reseeded = await store.lookup(keys, 'req', PREFIX)
  t.equal(store.lookupGrace(keys, reseeded.versions, 'req', PREFIX), undefined)
})

t.test('Generations: grace option, stores without soft bumps, the breaker', async (t) => {
  const gens = new Generations({ store: new MemoryStore(), prefix: 'g' })
  await t.rejects(gens.bump('news', {}, { grace: -1 }), new GroupcacheError('GC_INVALID_OPTION', 'bump: option grace must be a number of seconds (0 or more), got -1'))
  await t.rejects(gens.bumpMany(['news'], {}, { grace: 'soon' as unknown as number }), { code: 'GC_INVALID_OPTION' })
  t.equal(await gens.bump('news', {}, { grace: 0 }), true, 'grace 0 is a hard bump')
  const keys = [gens.epochKey, gens.versionKeys(['news'])[0] as string]
  const before = gens.lookupWithEpoch(keys, 'r') as LookupResult
  await gens.write(before.entryKey, Buffer.from('old'), 60_000)
  await gens.bump('news', {}, { grace: 5 })
  const after = gens.lookupWithEpoch(keys, 'r') as LookupResult
  t.equal((gens.lookupGrace(keys, after.versions, 'r') as { entry: Buffer }).entry.toString(), 'old', 'synchronous on the memory store')

  const plain = new Generations({ store: new FaultyStore(new MemoryStore()), prefix: 'p' })
  t.equal(plain.lookupGrace(keys, after.versions, 'r'), undefined, 'a store without lookupGrace has no soft bumps')

  const faulty = new FaultyStore(new RedisStore({ client }))
  const withGrace = Object.assign(faulty, { lookupGrace: () => Promise.resolve(undefined) })
  const guarded = new Generations({ store: withGrace, prefix: 'b', breaker: { failures: 1, cooldown: 60_000 }, logger: { warn() {}, error() {}, info() {} } })
  faulty.setFault('error')
  await t.rejects(Promise.resolve().then(() => guarded.lookupWithEpoch(keys, 'r')))
  t.throws(() => guarded.lookupGrace(keys, after.versions, 'r'), { code: 'GC_STORE_UNAVAILABLE' }, 'the open breaker refuses grace reads too')
  faulty.setFault('none')
  await guarded.close()
})

t.test('function cache: a soft invalidate lets identical calls take the previous value while one recomputes', async (t) => {
  for (const kit of kits.slice(0, 2)) {
    await t.test(kit.name, async (t) => {
      const cache = new GenerationalCache({ store: kit.make(), prefix: `fc${++n}` })
      let version = 1
      let runs = 0
      let release: (() => void) | undefined
      const render = cache.wrap(
        async ({ userId }: { userId: number }) => {
          runs++
          const mine = version
          if (release === undefined) await new Promise<void>((resolve) => (release = resolve))
          return `nav ${userId} v${mine}`
        },
        { name: 'nav', groups: ['nav:userId'] }
      )
      release = () => {}
      t.equal(await render({ userId: 7 }), 'nav 7 v1')
      version++
      t.equal(await cache.invalidate(['nav:userId'], { userId: 7 }, { grace: 30 }), true)
      release = undefined
      const leader = render({ userId: 7 })
      while (runs < 2) await new Promise((resolve) => setImmediate(resolve))
      t.same(await Promise.all([render({ userId: 7 }), render({ userId: 7 })]), ['nav 7 v1', 'nav 7 v1'], 'the previous value, without waiting')
      ;(release as unknown as () => void)()
      t.equal(await leader, 'nav 7 v2', 'one call recomputed')
      t.equal(await render({ userId: 7 }), 'nav 7 v2')
      t.equal(runs, 2)

      // bind().invalidate(values, { grace }); then a hard invalidate: followers wait and get the new value.
      const bound = cache.bind(['nav:userId'])
      await bound.set({ userId: 8 }, 'eight v1')
      t.equal(await bound.invalidate({ userId: 8 }, { grace: 30 }), true)
      t.equal(await bound.get({ userId: 8 }), undefined, 'get never returns the previous generation')
      version++
      await cache.invalidate(['nav:userId'], { userId: 7 })
      release = undefined
      const hardLeader = render({ userId: 7 })
      while (runs < 3) await new Promise((resolve) => setImmediate(resolve))
      const follower = render({ userId: 7 })
      ;(release as unknown as () => void)()
      t.same(await Promise.all([hardLeader, follower]), ['nav 7 v3', 'nav 7 v3'], 'after a hard invalidate, never the old value')
      await cache.close()
    })
  }
})

t.test('function cache: a grace read that fails is logged and the call waits for the recompute', async (t) => {
  class FailingGrace extends MemoryStore {
    override lookupGrace(): never {
      throw new Error('grace read failed (test)')
    }
  }
  const warnings: string[] = []
  const cache = new GenerationalCache({ store: new FailingGrace(), prefix: 'fg', logger: { warn() {}, error: (_o, msg) => warnings.push(String(msg)) } })
  let release: (() => void) | undefined
  let runs = 0
  const compute = async () => {
    runs++
    await new Promise<void>((resolve) => (release = resolve))
    return `value ${runs}`
  }
  await cache.set(['g'], {}, 'old')
  await cache.invalidate(['g'], {}, { grace: 30 })
  const leader = cache.getOrSet(['g'], {}, compute)
  while (runs === 0) await new Promise((resolve) => setImmediate(resolve))
  const follower = cache.getOrSet(['g'], {}, compute)
  while (warnings.length === 0) await new Promise((resolve) => setImmediate(resolve))
  ;(release as () => void)()
  t.same(await Promise.all([leader, follower]), ['value 1', 'value 1'], 'the follower joined the recompute')
  t.match(warnings, [/store grace failed/])
  t.equal(cache.getStats().errors, 1)
})
