import v8 from 'node:v8'
import vm from 'node:vm'
import t from 'tap'
import { GenerationalCache, subscribeLookups } from '../lib/index.js'
import { HttpCache } from '../lib/http/http-cache.js'

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void

/**
 * Bytes allocated per memory hit of the shared layer: new-space growth over a
 * run short enough (1000 hits, about a megabyte) that a scavenge rarely falls
 * inside it; one that does only lowers its sample, so the largest of five is
 * taken. Deterministic, unlike a timing, so it can be asserted.
 */
function bytesPerHit(http: HttpCache, hit: () => unknown): number {
  const newSpace = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_used_size
  const samples: number[] = []
  for (let round = 0; round < 5; round++) {
    gc()
    const before = newSpace()
    for (let i = 0; i < 1000; i++) hit()
    samples.push((newSpace() - before) / 1000)
  }
  return Math.max(...samples)
}

t.test('the lookup trace allocates only while someone subscribes', async (t) => {
  const http = new HttpCache(new GenerationalCache(), { ttl: 60, statuses: [200], maxEntryBytes: 1 << 20 })
  const route = http.compile({ pattern: '/items', name: 'GET /items', params: [], cacheable: true }, { group: 'items' })
  const req = { method: 'GET', url: '/items', headers: { host: 'h' }, params: {}, raw: null }
  const first = http.begin(route, req)
  if (first instanceof Promise || first.kind !== 'miss') throw new Error('expected a synchronous miss')
  await http.finish(first, 200, { 'content-type': 'text/plain' }, Buffer.from('hello'))
  const hit = () => {
    const answer = http.begin(route, req)
    if (answer instanceof Promise || answer.kind !== 'serve') throw new Error('expected a synchronous hit')
  }
  // Unoptimized code boxes numbers on the heap: every measurement runs after a
  // warm-up, since subscribing changes the types the hit path sees (a deopt).
  const warm = () => {
    for (let i = 0; i < 50_000; i++) hit()
  }
  // Levels shift by up to ~150 bytes between optimized variants of the hit path (and a
  // loaded machine adds noise), so the comparison is against the context's cost (300–500
  // bytes), and a measurement gets three tries: without the hasSubscribers guard, no try
  // shows a difference.
  const tries: string[] = []
  for (let attempt = 0; attempt < 3; attempt++) {
    warm()
    const quiet = bytesPerHit(http, hit)
    const stop = subscribeLookups({ answered: () => {} })
    warm()
    const traced = bytesPerHit(http, hit)
    stop()
    warm()
    const quietAgain = bytesPerHit(http, hit)
    tries.push(`${quiet.toFixed(1)} → ${traced.toFixed(1)} → ${quietAgain.toFixed(1)}`)
    if (traced - quiet > 100 && traced - quietAgain > 100) break
  }
  const last = (tries.at(-1) as string).split(' → ').map(Number) as [number, number, number]
  t.ok(last[1] - last[0] > 100, `a subscriber costs the context (bytes per hit, quiet → traced → quiet: ${tries.join('; ')})`)
  t.ok(last[1] - last[2] > 100, 'unsubscribed, that cost is gone again')
})
