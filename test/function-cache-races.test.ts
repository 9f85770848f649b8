import Fastify from 'fastify'
import t from 'tap'
import groupcache from '../lib/index.js'
import { expressCache } from '../lib/express.js'
import { GenerationalCache, MemoryStore } from '../lib/index.js'
import { storeKits } from './helpers/stores.js'
import { FaultyStore } from './helpers/faulty-store.js'
import { gate } from './helpers/matrix.js'

let n = 0
const settle = () => new Promise((resolve) => setTimeout(resolve, 20))
/** Polls until a condition holds: a fixed sleep is not enough for Redis round trips on a loaded machine. */
async function until(condition: () => boolean, ms = 5000): Promise<boolean> {
  for (const end = Date.now() + ms; !condition(); ) {
    if (Date.now() > end) return false
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  return true
}

/** A computation the test finishes when it wants, counting its runs. */
function controlled<T>(result: () => T) {
  const state = { runs: 0, release: gate() }
  const compute = async () => {
    state.runs++
    await state.release.wait
    return result()
  }
  return { state, compute }
}

for (const kit of await storeKits(t)) {
  t.test(`function cache races on ${kit.name}`, async (t) => {
    const cache = new GenerationalCache({ store: kit.make(), ttl: 3600, prefix: `fr${process.pid}x${++n}` })
    t.teardown(() => cache.close())

    await t.test('values come out as copies: writing into a returned Buffer or typed array changes nothing cached', async (t) => {
      const value = { buf: Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]), f32: new Float32Array([1, 2]), list: [1] }
      await cache.set(['copies-out'], {}, value)
      const got = (await cache.get<typeof value>(['copies-out']))!
      got.buf.fill(0)
      got.f32[0] = 42
      got.list.push(2)
      t.same(await cache.get(['copies-out']), value, 'get')
      const viaGetOrSet = (await cache.getOrSet(['copies-out'], {}, () => value))
      viaGetOrSet.buf.fill(7)
      t.same(await cache.getOrSet(['copies-out'], {}, () => value), value, 'getOrSet hit')
      const bytes = cache.wrap(async function bytes(size: number) {
        return Buffer.alloc(size, 1)
      })
      await bytes(16)
      const hit = await bytes(16)
      hit.fill(9)
      t.same(await bytes(16), Buffer.alloc(16, 1), 'wrap hit')
    })

    await t.test('a coalesced follower gets its own copy, not the leader\'s object', async (t) => {
      const { state, compute } = controlled(() => ({ buf: Buffer.from([1, 2]), list: [1] }))
      const collapsedBefore = cache.getStats().collapsed
      const calls = [cache.getOrSet(['follow'], {}, compute), cache.getOrSet(['follow'], {}, compute), cache.getOrSet(['follow'], {}, compute)]
      await until(() => state.runs === 1 && cache.getStats().collapsed - collapsedBefore === 2)
      state.release.open()
      const [leader, a, b] = await Promise.all(calls)
      t.equal(state.runs, 1)
      leader!.buf[0] = 9
      leader!.list.push(2)
      a!.buf[1] = 9
      t.same(b, { buf: Buffer.from([1, 2]), list: [1] })
      t.not(a!.buf.buffer, b!.buf.buffer, 'followers do not share memory')
      t.same(await cache.get(['follow']), { buf: Buffer.from([1, 2]), list: [1] })
    })

    await t.test('a delete that returned wins over a computation already running', async (t) => {
      let version = 'old'
      const { state, compute } = controlled(() => `computed from ${version} data`)
      const running = cache.getOrSet(['del-race'], { id: 1 }, compute)
      await until(() => state.runs === 1)
      version = 'new'
      await cache.delete(['del-race'], { id: 1 })
      const late = cache.getOrSet(['del-race'], { id: 1 }, compute)
      await until(() => state.runs === 2)
      t.equal(state.runs, 2, 'a call after the delete does not join the old computation')
      state.release.open()
      t.equal(await running, 'computed from new data', 'the caller that overlapped the delete still gets an answer')
      t.equal(await late, 'computed from new data')
      t.equal(await cache.get(['del-race'], { id: 1 }), 'computed from new data', 'the call that started after the delete stored its result')
    })

    await t.test('a delete wins over a computation whose result was not stored (no later call)', async (t) => {
      const { state, compute } = controlled(() => 'stale')
      const running = cache.getOrSet(['del-only'], {}, compute)
      await until(() => state.runs === 1)
      await cache.delete(['del-only'])
      state.release.open()
      t.equal(await running, 'stale')
      t.equal(await cache.get(['del-only']), undefined, 'not stored after the delete returned')
    })

    await t.test('wrap().invalidate that returned wins over a running call', async (t) => {
      let source = 'old'
      const release = gate()
      let runs = 0
      const render = cache.wrap(
        async ({ id }: { id: number }) => {
          runs++
          const seen = source
          await release.wait
          return `${id}:${seen}`
        },
        { name: 'render-race' }
      )
      const running = render({ id: 1 })
      await until(() => runs === 1)
      source = 'new'
      await render.invalidate({ id: 1 })
      release.open()
      t.equal(await running, '1:old')
      t.equal(await render({ id: 1 }), '1:new', 'the next call recomputes: the old result was never stored')
      t.equal(runs, 2)
    })

    await t.test('an invalidate (group bump) that returned orphans a running computation', async (t) => {
      const { state, compute } = controlled(() => 'before the bump')
      const running = cache.getOrSet(['user:userId'], { userId: 5 }, compute)
      await until(() => state.runs === 1)
      await cache.invalidate(['user:userId'], { userId: 5 })
      const after = cache.getOrSet(['user:userId'], { userId: 5 }, async () => 'after the bump')
      t.equal(await after, 'after the bump', 'a call after the bump does not join the running computation')
      state.release.open()
      t.equal(await running, 'before the bump')
      t.equal(await cache.get(['user:userId'], { userId: 5 }), 'after the bump', 'the old computation was stored under the old versions: orphaned')
      const fn = cache.wrap(async function cleared() {
        state.runs++
        await state.release.wait
        return state.runs
      })
      state.release = gate()
      const call = fn()
      await until(() => state.runs === 2)
      await fn.clear()
      state.release.open()
      const first = await call
      t.not(await fn(), first, 'a clear() that returned orphans the running call too')
    })

    await t.test('a set that returned wins over a computation already running', async (t) => {
      const { state, compute } = controlled(() => 'computed')
      const running = cache.getOrSet(['set-race'], {}, compute)
      await until(() => state.runs === 1)
      await cache.set(['set-race'], {}, 'explicit')
      state.release.open()
      t.equal(await running, 'computed')
      t.equal(await cache.get(['set-race']), 'explicit')
    })
  })
}

t.test('a delete waits for a write of the same entry already under way, then drops it', async (t) => {
  const faulty = new FaultyStore(new MemoryStore())
  const cache = new GenerationalCache({ store: faulty })
  const realSet = faulty.set.bind(faulty)
  const writing = gate()
  let writes = 0
  faulty.set = async (key, value, ttl) => {
    writes++
    await writing.wait
    return realSet(key, value, ttl)
  }
  const running = cache.getOrSet(['w'], {}, async () => 'computed')
  await settle()
  t.equal(writes, 1, 'the write is under way')
  const deleting = cache.delete(['w'])
  await settle()
  writing.open()
  await deleting
  t.equal(await running, 'computed')
  t.equal(await cache.get(['w']), undefined, 'the delete came last')
})

t.test('coalescing waits are bounded: a hung computation never captures later calls', async (t) => {
  const cache = new GenerationalCache({ store: new MemoryStore(), coalesceTimeout: 30 })
  const hung = new Promise<string>(() => {})
  let runs = 0
  const compute = () => {
    runs++
    return runs === 1 ? hung : Promise.resolve(`run ${runs}`)
  }
  void cache.getOrSet(['hang'], {}, compute)
  await settle()
  const follower = await cache.getOrSet(['hang'], {}, compute)
  t.equal(follower, 'run 2', 'the follower gave up waiting and computed itself')
  t.equal(cache.getStats().collapsed, 1, 'it did join first')
  t.equal(await cache.get(['hang']), 'run 2', 'its result is stored')
  t.equal(await cache.getOrSet(['hang'], {}, compute), 'run 2', 'later calls are hits')
  t.equal(runs, 2)

  const slow = cache.wrap(
    async (_: { id: number }) => {
      const run = ++runs
      if (run === 3) await hung
      // The takeover outlives the moment the other follower gives up on the hung call (same timer tick).
      if (run === 4) await settle()
      return `wrapped ${run}`
    },
    { name: 'slow' }
  )
  void slow({ id: 1 })
  await settle()
  const [a, b] = await Promise.all([slow({ id: 1 }), slow({ id: 1 })])
  t.equal(a, 'wrapped 4', 'wrap: the first follower to give up becomes the leader')
  t.equal(b, 'wrapped 4', 'and the other follower gets its result')
  t.equal(runs, 4)
  t.equal(cache.getStats().collapsed, 3, 'a follower that joins twice (the hung call, then the takeover) counts once')
  t.equal(new GenerationalCache().coalesceTimeout, 10_000, 'the documented default')
  t.throws(() => new GenerationalCache({ coalesceTimeout: 0 }), { code: 'GC_INVALID_OPTION', message: /option coalesceTimeout must be a positive number/ })
})

t.test("the plugin's coalesceTimeout bounds its function cache's waits too (Fastify and Express)", async (t) => {
  // Regression: app.groupcache.cache and gc.cache waited the default 10 s whatever the plugin was given.
  const app = Fastify()
  await app.register(groupcache, { coalesceTimeout: 30 })
  t.teardown(() => app.close())
  const gc = expressCache({ coalesceTimeout: 30 })
  t.teardown(() => gc.close())
  for (const [name, cache] of [['fastify', app.groupcache.cache], ['express', gc.cache]] as const) {
    let runs = 0
    const compute = () => (++runs === 1 ? new Promise<string>(() => {}) : Promise.resolve(`run ${runs}`))
    void cache.getOrSet(['plugin-hang'], {}, compute)
    await settle()
    const started = Date.now()
    t.equal(await cache.getOrSet(['plugin-hang'], {}, compute), 'run 2', `${name}: the follower gave up waiting and computed itself`)
    t.ok(Date.now() - started < 5000, `${name}: within the plugin's bound, not the default 10 s`)
  }
})

t.test('a superseded hung computation that finishes late is not stored over the newer result', async (t) => {
  const cache = new GenerationalCache({ store: new MemoryStore(), coalesceTimeout: 30 })
  const { state, compute } = controlled(() => 'late')
  const first = cache.getOrSet(['late'], {}, compute)
  await settle()
  const fresh = controlled(() => 'fresh')
  const takeover = cache.getOrSet(['late'], {}, fresh.compute)
  await new Promise((resolve) => setTimeout(resolve, 60))
  t.equal(fresh.state.runs, 1, 'the follower gave up and took the lead')
  state.release.open()
  t.equal(await first, 'late', 'the superseded call still answers its caller')
  const joining = cache.getOrSet(['late'], {}, compute)
  await settle()
  t.equal(state.runs, 1, 'a later call joins the takeover: the superseded call finishing did not remove it')
  fresh.state.release.open()
  t.equal(await takeover, 'fresh')
  t.equal(await joining, 'fresh')
  t.equal(await cache.get(['late']), 'fresh', 'the late result was not stored over it')
})

t.test('the in-flight table is bounded: past maxInflight a call computes without being stored', async (t) => {
  const cache = new GenerationalCache({ store: new MemoryStore(), maxInflight: 2 })
  const { state, compute } = controlled(() => 'held')
  const held = [cache.getOrSet(['a'], {}, compute), cache.getOrSet(['b'], {}, compute)]
  await settle()
  t.equal(await cache.getOrSet(['c'], {}, () => 'overflow'), 'overflow', 'answered')
  t.equal(await cache.get(['c']), undefined, 'but not stored (it could not be cancelled by a delete)')
  t.equal(cache.getStats().bypasses, 1)
  state.release.open()
  await Promise.all(held)
  t.equal(await cache.getOrSet(['c'], {}, () => 'stored'), 'stored')
  t.equal(await cache.get(['c']), 'stored', 'the table drained')
  t.equal(new GenerationalCache().maxInflight, 10_000, 'the documented default')
  t.throws(() => new GenerationalCache({ maxInflight: 0 }), { code: 'GC_INVALID_OPTION' })
  t.throws(() => new GenerationalCache({ maxInflight: 1.5 }), { code: 'GC_INVALID_OPTION', message: /option maxInflight must be a positive integer/ })
})

t.test('engine details the mutation run found untested', async (t) => {
  const warnings: [unknown, string | undefined][] = []
  const faulty = new FaultyStore(new MemoryStore())
  // Every fault logged (no rate limit to speak of), so each call's line can be checked.
  const cache = new GenerationalCache({ store: faulty, maxInflight: 1, faultLogInterval: 0.001, logger: { warn() {}, error: (o, m) => warnings.push([o, m]) } })
  t.equal(cache.maxInflight, 1, 'maxInflight 1 is valid')

  let runs = 0
  const one = cache.wrap(async function one() {
    return ++runs
  })
  const two = cache.wrap(async function two() {
    return ++runs
  })
  await one()
  await two()
  await one.clear()
  await one()
  await two()
  t.equal(runs, 3, 'clear() orphans its own function only')

  const before = cache.getStats()
  await cache.get(['stats'])
  await cache.set(['stats'], {}, 1)
  await cache.get(['stats'])
  const after = cache.getStats()
  t.equal(after.misses - before.misses, 1)
  t.equal(after.hits - before.hits, 1)

  const nullable = cache.wrap(async function nullable(v: null) {
    return v === null ? 'null arg' : 'other'
  })
  t.equal(await nullable(null), 'null arg', 'null as the first argument is a positional value, not values')
  t.throws(() => cache.wrap(async function named() {}, { name: 42 as never }), { code: 'GC_INVALID_OPTION', message: /option name is required/ })

  const custom = cache.bind(['first:userId', 'second:blogId'])
  await custom.set({ userId: 1, blogId: 2 }, 'both')
  t.equal(await custom.invalidate({ blogId: 2 }), true, 'a bound group the values cannot resolve is skipped, not an error')
  t.equal(await custom.get({ userId: 1, blogId: 2 }), undefined)

  faulty.setFault('error')
  const errors = cache.getStats().errors
  await cache.set(['g'], {}, 1)
  await cache.delete(['g'])
  t.equal(await cache.getOrSet(['g'], {}, () => 'computed'), 'computed')
  t.equal(cache.getStats().errors - errors, 3, 'each fault counted')
  t.match(warnings.map(([o, m]) => [o, m]), [
    [{ err: { message: /store is down/ }, route: 'function cache' }, 'groupcache: store set failed; served uncached'],
    [{ err: Error, route: 'function cache' }, 'groupcache: store delete failed; served uncached'],
    [{ err: Error, route: 'function cache' }, 'groupcache: store lookup failed; served uncached']
  ])
  faulty.setFault('none')
})
