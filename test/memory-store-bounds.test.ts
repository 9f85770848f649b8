import t from 'tap'
import { MemoryStore } from '../lib/index.js'

/**
 * The MemoryStore's bounds, at their edges: the options that set them, the
 * bytes an entry is counted for, and the version floor that keeps an evicted
 * version from coming back when the clock does not move.
 */

t.test('each bound must be a positive integer, and 1 is one', async (t) => {
  for (const name of ['maxBytes', 'maxEntries', 'maxVersions'] as const) {
    for (const bad of [0, -1, 1.5, Number.NaN, Infinity, '10']) {
      t.throws(() => new MemoryStore({ [name]: bad as number }), { code: 'GC_INVALID_OPTION', message: `MemoryStore option ${name} must be a positive integer, got ${String(bad)}` })
    }
  }
  const one = new MemoryStore({ maxEntries: 1 })
  await one.set('a', Buffer.from('a'), 60_000)
  await one.set('b', Buffer.from('b'), 60_000)
  t.equal(one.size.entries, 1, 'maxEntries 1 keeps one entry')
  const single = new MemoryStore({ maxVersions: 1 })
  single.lookup(['gc:v:a'], 'rk', 'e:')
  single.lookup(['gc:v:b'], 'rk', 'e:')
  t.equal(single.size.versions, 1, 'maxVersions 1 keeps one version')
})

t.test('an entry counts its value, its key and 800 bytes of overhead, so maxBytes bounds what entries really hold', async (t) => {
  const key = `gc:e:${'k'.repeat(95)}`
  const store = new MemoryStore({ maxBytes: 2 * (1000 + key.length + 800) })
  await store.set(key, Buffer.alloc(1000), 60_000)
  t.equal(store.size.bytes, 1000 + key.length + 800)
  await store.set(`${key}2`, Buffer.alloc(999), 60_000)
  t.equal(store.size.entries, 2, 'two entries fit exactly')
  t.equal(store.size.bytes, 2 * (1000 + key.length + 800))
  await store.set(`${key}3`, Buffer.alloc(1), 60_000)
  t.equal(store.size.entries, 2, 'a third pushes the least recently used out')
  t.equal(store.size.bytes, (999 + key.length + 1 + 800) + (1 + key.length + 1 + 800), 'the first one went')
})

/** Stores an entry under each of `count` generations of `keys` (bumping between them); the versions they had. */
async function storeGenerations(store: MemoryStore, keys: string[], count: number): Promise<string[]> {
  const seen: string[] = []
  for (let generation = 1; generation <= count; generation++) {
    const found = store.lookup(keys, 'rk', 'e:')
    seen.push(found.versions[0] as string)
    await store.set(found.entryKey, Buffer.from(`generation ${generation}`), 60_000)
    if (generation < count) await store.bump(keys)
  }
  return seen
}

t.test('with the clock standing still, a version bumped past it, evicted, then bumped again never lands on a value it had', async (t) => {
  // Versions are seeded from the clock and bumps move them past it. An evicted
  // version must be reseeded above every value it had, or the bump that seeds
  // it again would bring back the entries stored before that bump.
  t.clock.enter()
  t.teardown(() => t.clock.exit())
  const store = new MemoryStore({ maxVersions: 1 })
  const keys = ['gc:v:a']
  const seen = await storeGenerations(store, keys, 3)
  store.lookup(['gc:v:other'], 'rk', 'e:') // pushes a's version out of the table
  await store.bump(keys) // a user's bump of a: it seeds a again
  const after = store.lookup(keys, 'rk', 'e:')
  t.notOk(seen.includes(after.versions[0] as string), `the bump gave ${after.versions[0]}, none of ${seen.join(', ')}`)
  t.equal(after.entry, undefined, 'no entry from before the bump is served')
})

t.test('with the clock standing still, a version that leaves the table after an evicted one does not lower the floor under it', async (t) => {
  t.clock.enter()
  t.teardown(() => t.clock.exit())
  const store = new MemoryStore({ maxVersions: 2 })
  const low = ['gc:v:low']
  const keys = ['gc:v:a']
  store.lookup(low, 'rk', 'e:') // the lowest version handed out
  const seen = await storeGenerations(store, keys, 4)
  store.lookup(low, 'rk', 'e:') // a is now the least recently used
  store.lookup(['gc:v:other'], 'rk', 'e:') // pushes a out
  await store.bump(low) // the low version leaves the table, replaced
  await store.bump(keys) // seeds a again
  const after = store.lookup(keys, 'rk', 'e:')
  t.notOk(seen.includes(after.versions[0] as string), `the bump gave ${after.versions[0]}, none of ${seen.join(', ')}`)
  t.equal(after.entry, undefined, 'no entry from before the bump is served')
})
