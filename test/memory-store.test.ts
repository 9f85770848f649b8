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
  const store = new MemoryStore({ maxBytes: 100_000 })
  for (let i = 0; i < 50; i++) await store.set(`k${i}`, Buffer.alloc(10_000), 60_000)
  t.ok(store.size.bytes <= 100_000, `held ${store.size.bytes} bytes`)
  t.equal(store.size.entries, 9, 'each entry counts its bytes, its key and 800 bytes of overhead')
  await store.set('huge', Buffer.alloc(200_000), 60_000)
  t.ok(store.size.bytes <= 100_000, 'an entry larger than the bound is not kept')
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

t.test('no orphan pile-up: a new generation of a request key drops the entry it replaced, after storing', async (t) => {
  const store = new MemoryStore()
  const keys = ['gc:epoch', 'gc:v:posts']
  let hits = 0
  for (let generation = 0; generation < 30; generation++) {
    for (let url = 0; url < 100; url++) {
      const found = store.lookup(keys, `/posts/${url}`, 'gc:e:')
      if (found.entry !== undefined) hits++
      else await store.set(found.entryKey, Buffer.from(`generation ${generation}`), 60_000)
    }
    await store.bump(['gc:v:posts'])
  }
  t.equal(hits, 0, 'every generation misses')
  t.equal(store.size.entries, 100, '30 generations × 100 URLs leave one entry per URL')

  const before = store.lookup(keys, '/posts/0', 'gc:e:')
  await store.set(before.entryKey, Buffer.from('current'), 60_000)
  await store.bump(['gc:v:posts'])
  const after = store.lookup(keys, '/posts/0', 'gc:e:')
  t.equal(store.size.entries, 100, 'the lookup that saw the new generation deleted nothing yet')
  await store.set(after.entryKey, Buffer.from('next'), 60_000)
  t.equal(store.size.entries, 100, 'storing the new one dropped the old one')
  t.equal(store.lookup(keys, '/posts/0', 'gc:e:').entry?.toString(), 'next')
})

t.test('an unknown option is an error naming it (a typo is never ignored)', async (t) => {
  t.throws(() => new MemoryStore({ maxbytes: 1 } as never), { code: 'GC_INVALID_OPTION', message: 'MemoryStore: unknown option "maxbytes" (known: maxBytes, maxEntries, maxVersions)' })
  t.throws(() => new MemoryStore(null as never), { code: 'GC_INVALID_OPTION', message: 'MemoryStore: options must be an object, got null' })
})
