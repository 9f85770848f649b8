import t from 'tap'
import { GroupcacheError } from '../lib/errors.js'
import type { CacheStats } from '../lib/core/generations.js'
import { MemoryStore } from '../lib/store/memory.js'
import type { LookupResult, Store } from '../lib/store/store.js'
import { buildStats, countReason, newRouteCounts, OTHER_ROUTES, routeHitRatio, RouteStats, storeKind, storeSize } from '../lib/observability/stats.js'

/** A store of no known kind. */
class CustomStore implements Store {
  lookup(): LookupResult {
    return { versions: [], entryKey: 'k', entry: undefined }
  }
  async set(): Promise<void> {}
  async delete(): Promise<void> {}
  async bump(): Promise<void> {}
  async close(): Promise<void> {}
}

const totals: CacheStats = { hits: 3, misses: 1, stores: 1, bypasses: 2, collapsed: 0, bumps: 0, errors: 0, pendingBumps: 0, breaker: 'closed' }

t.test('a route keeps one live counters object; snapshots are copies with hit ratios', async (t) => {
  const routes = new RouteStats()
  const users = routes.counts('GET /users/:userId')
  t.equal(routes.counts('GET /users/:userId'), users, 'the same object: call sites keep it and increment in place')
  t.equal(routeHitRatio(users), null, 'no lookups yet')
  users.hits += 3
  users.misses++
  users.stored++
  countReason(users.notStored, 'set-cookie')
  countReason(users.notStored, 'set-cookie')
  countReason(users.bypass, 'authorization')
  const snap = routes.snapshot()
  t.same(snap['GET /users/:userId'], { hits: 3, stale: 0, misses: 1, collapsed: 0, stored: 1, notStored: { 'set-cookie': 2 }, bypass: { authorization: 1 }, hitRatio: 0.75 })
  snap['GET /users/:userId']!.notStored['set-cookie'] = 99
  t.same(users.notStored, { 'set-cookie': 2 }, 'a snapshot does not alias the live counters')

  const bypassedOnly = routes.counts('POST /users/:userId')
  countReason(bypassedOnly.bypass, 'method')
  t.same(routes.snapshot()['POST /users/:userId']?.bypass, { method: 1 }, 'a route only bypassed is listed')

  users.stale++
  users.collapsed += 3
  t.equal(routeHitRatio(users), 4 / 8, 'stale hits are served from the store; collapsed requests are lookups that were not')
})

t.test('fresh counters are zeroed and distinct', async (t) => {
  const a = newRouteCounts()
  t.same(a, { hits: 0, stale: 0, misses: 0, collapsed: 0, stored: 0, notStored: {}, bypass: {} })
  t.not(a, newRouteCounts())
  t.not(a.notStored, newRouteCounts().notStored)
})

t.test('routes are bounded: past maxRoutes they share one bucket', async (t) => {
  const routes = new RouteStats(2)
  routes.counts('GET /a').hits++
  routes.counts('GET /b')
  t.same(Object.keys(routes.snapshot()), ['GET /a'], 'a route no request reached yet is not listed')
  routes.counts('GET /b').hits++
  const third = routes.counts('GET /c')
  const fourth = routes.counts('GET /d')
  t.equal(third, fourth)
  third.misses++
  fourth.misses++
  t.same(Object.keys(routes.snapshot()), ['GET /a', 'GET /b', OTHER_ROUTES])
  t.equal(routes.snapshot()[OTHER_ROUTES]!.misses, 2)
  t.equal(routes.counts('GET /a').hits, 1, 'known routes keep their own counters')
  for (const bad of [0, -1, 1.5, Number.NaN]) {
    t.throws(() => new RouteStats(bad), new GroupcacheError('GC_INVALID_OPTION', `groupcache: option maxRouteStats must be a positive integer, got ${String(bad)}`))
  }
})

t.test('store kind and size', async (t) => {
  const memory = new MemoryStore()
  t.same(storeSize(memory), { kind: 'memory', entries: 0, bytes: 0, versions: 0 })
  memory.lookup(['gc:epoch', 'gc:v:x'], 'GET /a', 'gc:e:')
  await memory.set('gc:e:1', Buffer.alloc(100), 60_000)
  const size = storeSize(memory)
  t.equal(size.entries, 1)
  t.equal(size.versions, 2)
  t.ok(size.bytes! >= 100, 'bytes count the entry')

  t.equal(storeKind(new CustomStore()), 'CustomStore')
  t.same(storeSize(new CustomStore()), { kind: 'CustomStore' })
  const named = Object.assign(new CustomStore(), { name: 'dynamo', size: { entries: 5, bytes: 'many', versions: Infinity } })
  t.same(storeSize(named), { kind: 'dynamo', entries: 5, bytes: undefined, versions: undefined }, 'only finite numbers are reported')
  t.same(storeSize(Object.assign(new CustomStore(), { size: null })), { kind: 'CustomStore' })
})

t.test('buildStats: totals, ratio, breaker, reasons summed over routes, store, routes', async (t) => {
  const routes = new RouteStats()
  const a = routes.counts('GET /a')
  const b = routes.counts('GET /b')
  a.misses++
  b.misses += 2
  countReason(a.notStored, 'status')
  countReason(b.notStored, 'status')
  countReason(b.notStored, 'too-big')
  countReason(a.bypass, 'store-error')
  const stats = buildStats(totals, routes, new MemoryStore())
  t.match(stats, { ...totals, hitRatio: 0.75, notStored: { status: 2, 'too-big': 1 }, bypassed: { 'store-error': 1 }, store: { kind: 'memory', entries: 0 } })
  t.same(Object.keys(stats.routes), ['GET /a', 'GET /b'])
  t.equal(buildStats({ ...totals, breaker: 'open' }, routes, new CustomStore()).breaker, 'open', 'the engine\'s breaker state')
  t.equal(buildStats({ ...totals, hits: 0, misses: 0 }, new RouteStats(), new CustomStore()).hitRatio, null)
  t.same(JSON.parse(JSON.stringify(stats)).store, { kind: 'memory', entries: 0, bytes: 0, versions: 0 }, 'serializable as JSON')
})
