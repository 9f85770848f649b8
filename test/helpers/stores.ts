import type { Test } from 'tap'
import { MemoryStore, RedisStore, type Store } from '../../lib/index.js'
import { startRedis } from './redis.js'

/** A kind of store the shared suites run against. */
export interface StoreKit {
  name: string
  make(): Store
}

export const memoryKit: StoreKit = { name: 'memory', make: () => new MemoryStore() }

/**
 * The stores every shared suite runs against: memory, and Redis on a private
 * redis-server started for this test file (stopped at its teardown).
 */
export async function storeKits(t: Test): Promise<StoreKit[]> {
  // GC_MATRIX_STORE=memory skips Redis for mutation runs of store-agnostic code
  // (README "Mutation testing"); the suite always runs both.
  if (process.env.GC_MATRIX_STORE === 'memory') return [memoryKit]
  const server = await startRedis()
  const client = server.client()
  t.teardown(async () => {
    client.disconnect()
    await server.stop()
  })
  return [memoryKit, { name: 'redis', make: () => new RedisStore({ client }) }]
}
