/**
 * Memory bound: 100k distinct 2 KB entries through a cached Fastify route on a
 * MemoryStore bounded to `maxBytes`; RSS growth is compared with the bound.
 * Run with --expose-gc (the runner does). Prints one JSON line.
 */
import Fastify from 'fastify'
import groupcache, { MemoryStore } from '../lib/index.js'

const ENTRIES = Number(process.argv[2] ?? 100_000)
const MAX_BYTES = 64 * 1024 * 1024
const body = 'x'.repeat(2048)
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {})

const store = new MemoryStore({ maxBytes: MAX_BYTES, maxEntries: 1_000_000 })
const app = Fastify()
await app.register(groupcache, { store })
app.get('/e/:id', { config: { cache: true } }, async (request) => `${body}${(request.params as { id: string }).id}`)
await app.ready()
for (let i = 0; i < 1000; i++) await app.inject(`/warm/${i}`)
gc()
const before = process.memoryUsage().rss
for (let i = 0; i < ENTRIES; i++) await app.inject(`/e/${i}`)
gc()
const after = process.memoryUsage().rss
console.log(JSON.stringify({ entries: ENTRIES, maxBytes: MAX_BYTES, rssBefore: before, rssAfter: after, growth: after - before, held: store.size }))
await app.close()
