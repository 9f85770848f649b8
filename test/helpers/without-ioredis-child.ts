// Run by test/optional-ioredis.test.ts in a process where ioredis cannot be
// resolved: the memory store works, RedisStore({ url }) says what is missing.
import { GenerationalCache, GroupcacheError, MemoryStore, RedisStore } from '../../lib/index.js'

const cache = new GenerationalCache({ store: new MemoryStore() })
await cache.set(['posts'], {}, 'cached')
const report: Record<string, unknown> = { memory: await cache.get(['posts']) }
try {
  new RedisStore({ url: 'redis://127.0.0.1:1' })
  report.redis = 'constructed'
} catch (err) {
  report.redis = { isGroupcacheError: err instanceof GroupcacheError, code: (err as GroupcacheError).code, message: (err as Error).message }
}
await cache.close()
console.log(JSON.stringify(report))
