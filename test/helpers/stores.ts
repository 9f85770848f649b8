import { MemoryStore, type Store } from '../../lib/index.js'

/** A kind of store the shared suites run against. */
export interface StoreKit {
  name: string
  make(): Store
}

export const memoryKit: StoreKit = { name: 'memory', make: () => new MemoryStore() }

/** The stores every shared suite runs against. */
export async function storeKits(): Promise<StoreKit[]> {
  return [memoryKit]
}
