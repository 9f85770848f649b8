import t from 'tap'
import { GenerationalCache, MemoryStore } from '../lib/index.js'
import type { Test } from 'tap'
import { HttpCache, type HttpRequest } from '../lib/http/http-cache.js'
import type { RouteCacheOptions } from '../lib/http/route.js'

/**
 * The shared layer on a MemoryStore under the mocked clock, with one route at
 * `path`: `begin()` looks a request up, `miss()` expects a miss.
 */
function frozenLayer(t: Test, path: string, config: RouteCacheOptions) {
  t.clock.enter()
  t.teardown(() => t.clock.exit())
  // The mocked clock starts at 0: away from it, a sum and a difference of two times differ.
  t.clock.advance(1_700_000_000_000)
  const http = new HttpCache(new GenerationalCache({ store: new MemoryStore() }), { ttl: 60, statuses: [200], maxEntryBytes: 1 << 20 })
  t.teardown(() => http.close())
  const route = http.compile({ pattern: path, name: `GET ${path}`, params: [], cacheable: true }, config)
  const request: HttpRequest = { method: 'GET', url: path, headers: { host: 'test' }, params: {}, raw: null }
  const begin = async () => http.begin(route, request)
  const miss = async () => {
    const begun = await begin()
    if (begun.kind !== 'miss') throw new Error(`expected a miss, got ${begun.kind}`)
    return begun
  }
  return { http, route, begin, miss }
}

/**
 * Freshness at the exact millisecond it ends, on the shared HTTP layer under
 * a frozen clock: an entry is fresh while `storedAt + ttl > now`, so at
 * `now === storedAt + ttl` it is stale (served only within the
 * staleWhileRevalidate window, while an identical request revalidates, with
 * a negative Cache-Status ttl), and at `now === storedAt + ttl + window` it is
 * past the window.
 */
t.test('an entry is stale from the millisecond its ttl ends, and past its stale window from the one that ends', async (t) => {
  const { http, route, begin } = frozenLayer(t, '/news', { group: 'news', ttl: 10, staleWhileRevalidate: 30 })

  const first = await begin()
  if (first.kind !== 'miss') throw new Error('expected a miss')
  await http.finish(first, 200, { 'content-type': 'text/plain' }, 'news v1')
  const storedAt = Date.now()

  t.clock.advance(9_999)
  const lastFresh = await begin()
  t.equal(lastFresh.kind, 'serve', 'a millisecond before the ttl ends: a hit')
  t.equal(lastFresh.kind === 'serve' && lastFresh.cacheStatus, 'groupcache; hit; ttl=0')

  t.clock.advance(1)
  t.equal(Date.now(), storedAt + 10_000)
  const leader = await begin()
  t.equal(leader.kind, 'miss', 'at the millisecond the ttl ends, with nobody revalidating: a miss')
  const during = await begin()
  t.equal(during.kind, 'serve', 'while that miss revalidates, an identical request is answered stale')
  t.equal(during.kind === 'serve' && during.cacheStatus, 'groupcache; hit; ttl=-1', 'stale, so its ttl is negative (not ttl=0)')
  t.equal(route.counts.stale, 1, 'counted as stale')
  t.equal(route.counts.hits, 1, 'not as a hit')

  t.clock.advance(30_000)
  t.equal(Date.now(), storedAt + 40_000)
  const past = begin()
  if (leader.kind === 'miss') await http.finish(leader, 200, { 'content-type': 'text/plain' }, 'news v2')
  const joined = await past
  t.equal(joined.kind === 'serve' && joined.cacheStatus, 'groupcache; fwd=miss; collapsed', 'at the millisecond the stale window ends: not served stale; it waited on the revalidation')
  t.equal(joined.kind === 'serve' && joined.body?.toString(), 'news v2')
})

t.test('stale-if-error: the stale ttl counts from expiry, and the window ends at its last millisecond', async (t) => {
  const { http, miss } = frozenLayer(t, '/feed', { group: 'feed', ttl: 10, staleIfError: 60 })
  await http.finish(await miss(), 200, { 'content-type': 'text/plain' }, 'feed v1')

  t.clock.advance(15_000)
  const failed = await http.finish(await miss(), 500, { 'content-type': 'text/plain' }, 'down')
  t.equal(failed.stale?.body?.toString(), 'feed v1', 'a failure 5 s past expiry: the stale entry answers')
  t.equal(failed.cacheStatus, 'groupcache; fwd=stale; fwd-status=500; ttl=-5; detail=stale-if-error', 'stale for 5 s: ttl=-5')
  t.equal(failed.stale?.age, '15', 'stored 15 s ago')

  t.clock.advance(54_999)
  const last = await http.finish(await miss(), 500, { 'content-type': 'text/plain' }, 'down')
  t.equal(last.stale?.body?.toString(), 'feed v1', 'at the last millisecond of the window: still answered stale')

  t.clock.advance(1)
  const past = await http.finish(await miss(), 500, { 'content-type': 'text/plain' }, 'down')
  t.equal(past.stale, undefined, 'at the millisecond the window ends: the failure goes through')
  t.equal(past.cacheStatus, 'groupcache; fwd=miss; detail=status')
})

t.test('a soft bump: an entry that had expired when it came does not answer; the grace ends at its last millisecond', async (t) => {
  // staleIfError lets the soft bump's entry answer a failed recompute; the window is far longer than the test.
  const { http, miss } = frozenLayer(t, '/feed', { group: 'feed', ttl: 10, staleIfError: 600 })
  await http.finish(await miss(), 200, { 'content-type': 'text/plain' }, 'feed v1')

  // Bumped at the very millisecond the entry expires: it would have been recomputed anyway.
  t.clock.advance(10_000)
  await http.gens.bump('feed', {}, { grace: 30 })
  const expiredAtBump = await http.finish(await miss(), 500, { 'content-type': 'text/plain' }, 'down')
  t.equal(expiredAtBump.stale, undefined, 'no stale answer from an entry expired when the soft bump came')
  t.equal(expiredAtBump.cacheStatus, 'groupcache; fwd=miss; detail=status')

  // A fresh entry, soft-bumped: its grace answers a failed recompute until the grace's last millisecond.
  await http.finish(await miss(), 200, { 'content-type': 'text/plain' }, 'feed v2')
  t.clock.advance(1_000)
  await http.gens.bump('feed', {}, { grace: 30 })
  const lastMs = await miss()
  t.clock.advance(29_999)
  t.equal((await http.finish(lastMs, 500, { 'content-type': 'text/plain' }, 'down')).stale?.body?.toString(), 'feed v2', 'answered from the grace')
  const ended = await miss()
  t.clock.advance(1)
  const afterGrace = await http.finish(ended, 500, { 'content-type': 'text/plain' }, 'down')
  t.equal(afterGrace.stale, undefined, 'at the millisecond the grace ends: the failure goes through')
})
