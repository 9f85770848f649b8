import t from 'tap'
import { RedisStore } from '../lib/index.js'
import { startRedis } from './helpers/redis.js'

/**
 * A soft bump's record in Redis (`<version key>:g`, with PX) names the version
 * it set. It must never apply to another version of that key, such as the one
 * reseeded after the version key was evicted (allkeys-* policies) while the
 * record lived on.
 */

const server = await startRedis()
const client = server.client()
t.teardown(async () => {
  client.disconnect()
  await server.stop()
})

t.test('a grace record outliving its version key does not apply to the version reseeded after it', async (t) => {
  const store = new RedisStore({ client })
  const keys = ['gr:epoch', 'gr:v:a']
  const first = await store.lookup(keys, 'req', 'gr:e:')
  await store.set(first.entryKey, Buffer.from('before the soft bump'), 60_000)
  await store.bump(['gr:v:a'], { graceMs: 60_000 })
  const soft = await store.lookup(keys, 'req', 'gr:e:')
  t.equal((await store.lookupGrace(keys, soft.versions, 'req', 'gr:e:'))?.entry?.toString(), 'before the soft bump', 'within the grace')
  await client.del('gr:v:a') // evicted, as allkeys-lru may do; the record stays
  t.equal(await client.exists('gr:v:a:g'), 1)
  const reseeded = await new RedisStore({ client }).lookup(keys, 'req', 'gr:e:')
  t.not(reseeded.versions[1], soft.versions[1])
  t.equal(await store.lookupGrace(keys, reseeded.versions, 'req', 'gr:e:'), undefined, 'the record names another version: no grace')
})
