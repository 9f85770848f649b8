/**
 * Microbenchmark of the JavaScript a memory hit runs in the shared HTTP layer
 * (no sockets): `tsx bench/hit-path.ts`. For profiling, not for the README table.
 */
import { GenerationalCache } from '../lib/index.js'
import { HttpCache } from '../lib/http/http-cache.js'

const http = new HttpCache(new GenerationalCache(), { ttl: 60, statuses: [200], maxEntryBytes: 1 << 20 })
const route = http.compile({ pattern: '/items', name: 'GET /items', params: [], cacheable: true }, { group: 'items' })
const req = { method: 'GET', url: '/items', headers: { host: '127.0.0.1:3000', accept: '*/*' }, params: {}, raw: null }
const miss = http.begin(route, req)
if (miss instanceof Promise || miss.kind !== 'miss') throw new Error('expected a synchronous miss')
await http.finish(miss, 200, { 'content-type': 'application/json' }, 'x'.repeat(2000))
const N = 500_000
for (let round = 0; round < 3; round++) {
  const start = process.hrtime.bigint()
  for (let i = 0; i < N; i++) {
    const answer = http.begin(route, req)
    if (answer instanceof Promise || answer.kind !== 'serve') throw new Error('expected a synchronous hit')
  }
  console.log(`round ${round + 1}: ${(Number(process.hrtime.bigint() - start) / N).toFixed(0)} ns per hit`)
}
