/**
 * What one MemoryStore entry really costs the process: N entries of 2100 bytes
 * stored (no eviction with MIB large enough), then RSS, heap and external
 * memory per entry after a full GC. The source of MemoryStore's ENTRY_OVERHEAD.
 * `MIB=512 node --expose-gc --import tsx bench/entry-cost.ts 110000`
 */
import { hash } from 'node:crypto'
import { MemoryStore } from '../lib/store/memory.js'

const gc = (globalThis as { gc?: () => void }).gc ?? (() => {})
const settle = () => {
  gc()
  gc()
  return process.memoryUsage()
}
const store = new MemoryStore({ maxBytes: Number(process.env.MIB ?? 512) * 2 ** 20, maxEntries: 1_000_000 })
const before = settle()
const N = Number(process.argv[2] ?? 110_000)
for (let i = 0; i < N; i++) {
  const value = Buffer.allocUnsafeSlow(2100).fill(1)
  await store.set('gc:e:' + hash('sha1', String(i), 'hex'), value, 60_000)
}
const after = settle()
const n = store.size.entries
const per = (a: number, b: number) => Math.round((a - b) / n)
console.log(JSON.stringify({ entries: n, valueBytes: 2100, countedBytes: Math.round(store.size.bytes / n), rss: per(after.rss, before.rss), heap: per(after.heapUsed, before.heapUsed), external: per(after.external, before.external) }))
