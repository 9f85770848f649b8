/**
 * Memory bound: 100k distinct 2 KB responses stored through the shared HTTP
 * layer (begin/finish, as a route's misses are) on a MemoryStore bounded to
 * `maxBytes`; RSS growth is compared with the bound. Driven without sockets or
 * app.inject, whose own per-request garbage would swamp what is measured.
 * Run with --expose-gc (the runner does). Prints one JSON line.
 */
import { setImmediate as tick } from 'node:timers/promises'
import { GenerationalCache, MemoryStore } from '../lib/index.js'
import { HttpCache } from '../lib/http/http-cache.js'

const ENTRIES = Number(process.argv[2] ?? 100_000)
const MAX_BYTES = Number(process.env.MAX_MIB ?? 64) * 1024 * 1024
const body = 'x'.repeat(2048)
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {})
async function settle(): Promise<number> {
  // Several passes: freed Buffers' memory is released after the collection that finds them.
  for (let i = 0; i < 4; i++) {
    gc()
    await tick()
  }
  return process.memoryUsage().rss
}

const store = new MemoryStore({ maxBytes: MAX_BYTES, maxEntries: 1_000_000 })
const http = new HttpCache(new GenerationalCache({ store }), { ttl: 60, statuses: [200], maxEntryBytes: 1 << 20 })
// One static group: this measures entries (the version table has its own bound, maxVersions).
const route = http.compile({ pattern: '/e/:id', name: 'GET /e/:id', params: ['id'], cacheable: true }, { group: 'e' })
const headers = { 'content-type': 'text/plain; charset=utf-8' }

async function store1(i: number): Promise<void> {
  const miss = await http.begin(route, { method: 'GET', url: `/e/${i}`, headers: { host: 'bench' }, params: { id: String(i) }, raw: null })
  if (miss.kind !== 'miss') throw new Error(`expected a miss for /e/${i}`)
  await http.finish(miss, 200, headers, `${body}${i}`)
}

for (let i = 0; i < 1000; i++) await store1(-1 - i)
const before = await settle()
const mem0 = process.memoryUsage()
for (let i = 0; i < ENTRIES; i++) await store1(i)
const after = await settle()
const { heapTotal, external, arrayBuffers } = process.memoryUsage()
console.log(JSON.stringify({ entries: ENTRIES, maxBytes: MAX_BYTES, rssBefore: before, rssAfter: after, growth: after - before, held: store.size, heapTotal, external, arrayBuffers, before: mem0 }))
