import t from 'tap'
import { RedisStore } from '../lib/index.js'
import { startRedis } from './helpers/redis.js'

/**
 * Every eviction policy that may evict keys without a TTL (the group
 * versions) is warned about; those that evict only keys with a TTL (every
 * entry has one) are not. test/redis-store.test.ts has the once-only and
 * CONFIG-refused cases.
 */

const server = await startRedis()
const client = server.client()
t.teardown(async () => {
  client.disconnect()
  await server.stop()
})

for (const [policy, warned] of [
  ['allkeys-lru', true],
  ['allkeys-lfu', true],
  ['allkeys-random', true],
  ['volatile-lru', false],
  ['volatile-lfu', false],
  ['volatile-random', false],
  ['volatile-ttl', false],
  ['noeviction', false]
] as const) {
  t.test(`maxmemory-policy ${policy}: ${warned ? 'warned about' : 'fine'}`, async (t) => {
    await client.config('SET', 'maxmemory-policy', policy)
    const warnings: { obj: unknown; msg: string | undefined }[] = []
    await new RedisStore({ client }).checkServer({ warn: (obj, msg) => void warnings.push({ obj, msg }), error() {} })
    if (!warned) return t.same(warnings, [])
    t.equal(warnings.length, 1)
    t.same(warnings[0]?.obj, { policy })
    t.equal(
      warnings[0]?.msg,
      `groupcache: Redis maxmemory-policy is ${policy}, which may evict group version keys (they have no TTL): evicting a version orphans every entry of its group (misses, never stale hits). Prefer volatile-lru or volatile-ttl.`
    )
  })
}

t.test('a server that will not answer CONFIG (managed Redis) is a debug line, and nothing at all for a logger without debug', async (t) => {
  const down = server.client()
  down.disconnect()
  const debug: { obj: unknown; msg: string | undefined }[] = []
  await new RedisStore({ client: down }).checkServer({ warn() {}, error() {}, debug: (obj, msg) => void debug.push({ obj, msg }) })
  t.equal(debug.length, 1)
  t.match(debug[0], { obj: { err: Error }, msg: 'groupcache: could not read Redis maxmemory-policy' })
  await t.resolves(new RedisStore({ client: down }).checkServer({ warn() {}, error() {} }), 'debug is optional in a Logger')
})
