import t from 'tap'
import { MemoryStore, type Store } from '../lib/index.js'
import { storeContract } from './helpers/store-contract.js'

const MAX_VERSIONS = 200

t.test('MemoryStore meets the store contract', (t) =>
  storeContract(t, {
    make: () => new MemoryStore({ maxVersions: MAX_VERSIONS }),
    // Losing a version in memory means eviction: push it out of the LRU.
    loseVersions: async (store: Store) => {
      for (let i = 0; i < MAX_VERSIONS; i++) await store.lookup([`filler:${Math.random()}`], '', 'e:')
    }
  })
)

t.test('entries are bounded by bytes, least recently used first', async (t) => {
  const store = new MemoryStore({ maxBytes: 10_000 })
  for (let i = 0; i < 50; i++) await store.set(`k${i}`, Buffer.alloc(1000), 60_000)
  t.ok(store.size.bytes <= 10_000, `held ${store.size.bytes} bytes`)
  t.ok(store.size.entries < 10)
  t.ok(store.size.entries >= 8)
  await store.set('huge', Buffer.alloc(20_000), 60_000)
  t.ok(store.size.bytes <= 10_000, 'an entry larger than the bound is not kept')
})

t.test('entries are bounded by count', async (t) => {
  const store = new MemoryStore({ maxEntries: 3 })
  for (let i = 0; i < 10; i++) await store.set(`k${i}`, Buffer.from('x'), 60_000)
  t.equal(store.size.entries, 3)
})

t.test('the version table is bounded', async (t) => {
  const store = new MemoryStore({ maxVersions: 10 })
  for (let i = 0; i < 100; i++) await store.lookup([`v${i}`], '', 'e:')
  t.equal(store.size.versions, 10)
})

t.test('entries expire after their TTL', async (t) => {
  t.clock.enter()
  t.teardown(() => t.clock.exit())
  const store = new MemoryStore()
  const { entryKey } = await store.lookup(['v'], 'rk', 'e:')
  await store.set(entryKey, Buffer.from('x'), 5_000)
  t.clock.advance(4_999)
  t.ok((await store.lookup(['v'], 'rk', 'e:')).entry, 'alive just before the TTL')
  t.clock.advance(2)
  t.equal((await store.lookup(['v'], 'rk', 'e:')).entry, undefined, 'gone after it')
})

t.test('close drops every entry', async (t) => {
  const store = new MemoryStore()
  await store.set('k', Buffer.from('x'), 60_000)
  await store.close()
  t.equal(store.size.entries, 0)
})
