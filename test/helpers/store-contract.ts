import type { Test } from 'tap'
import { entryKey } from '../../lib/core/keys.js'
import type { Store } from '../../lib/index.js'

export interface ContractKit {
  make(): Store
  /** Makes the store lose these version keys (eviction, expiry, FLUSHALL, restart). */
  loseVersions(store: Store, keys: string[]): Promise<void>
}

let n = 0
const unique = (what: string) => `contract${process.pid}:${++n}:${what}`
const E = () => `${unique('e')}:`

/**
 * The store contract (DESIGN §3, §7): every store runs this same suite.
 * Versions are seeded fresh and never reused, bumps are atomic increments,
 * entry keys are derived exactly as lib/core/keys.ts says, entries are bytes.
 */
export async function storeContract(t: Test, kit: ContractKit): Promise<void> {
  const store = kit.make()
  t.teardown(() => store.close())

  await t.test('a lookup seeds missing versions with fresh large values and keeps them', async (t) => {
    const keys = [unique('v1'), unique('v2')]
    const first = await store.lookup(keys, 'rk', E())
    t.equal(first.versions.length, 2)
    for (const v of first.versions) {
      t.match(v, /^\d+$/, 'a decimal string')
      t.ok(Number(v) > 1e15, `seeded from the clock, not 0 or 1 (${v})`)
    }
    t.equal(first.entry, undefined)
    t.same((await store.lookup(keys, 'rk', E())).versions, first.versions, 'stable until bumped')
  })

  await t.test('the entry key is derived from the keys, versions and request key as keys.ts says', async (t) => {
    const keys = [unique('a'), unique('b')]
    const prefix = E()
    const found = await store.lookup(keys, 'request-key', prefix)
    t.equal(found.entryKey, entryKey(prefix, keys, found.versions, 'request-key'))
    t.not((await store.lookup(keys, 'other-request', prefix)).entryKey, found.entryKey)
  })

  await t.test('entries round-trip as exact bytes', async (t) => {
    const keys = [unique('bytes')]
    const prefix = E()
    const { entryKey: key } = await store.lookup(keys, 'rk', prefix)
    const value = Buffer.concat([Buffer.from([0, 255, 0, 10, 13]), Buffer.alloc(200_000, 7), Buffer.from('end ✓')])
    await store.set(key, value, 60_000)
    const found = await store.lookup(keys, 'rk', prefix)
    t.ok(found.entry?.equals(value))
  })

  await t.test('a bump moves a version by one and orphans the entries under the old one', async (t) => {
    const keys = [unique('bumped'), unique('other')]
    const prefix = E()
    const before = await store.lookup(keys, 'rk', prefix)
    await store.set(before.entryKey, Buffer.from('old'), 60_000)
    await store.bump([keys[0] as string])
    const after = await store.lookup(keys, 'rk', prefix)
    t.equal(BigInt(after.versions[0] as string), BigInt(before.versions[0] as string) + 1n)
    t.equal(after.versions[1], before.versions[1], 'other keys untouched')
    t.equal(after.entry, undefined, 'the old entry is unreachable')
  })

  await t.test('concurrent bumps are atomic: 25 bumps advance a version by 25', async (t) => {
    const key = unique('concurrent')
    const before = await store.lookup([key], 'rk', E())
    await Promise.all(Array.from({ length: 25 }, () => store.bump([key])))
    const after = await store.lookup([key], 'rk', E())
    t.equal(BigInt(after.versions[0] as string), BigInt(before.versions[0] as string) + 25n)
  })

  await t.test('bumping several keys at once moves each; bumping a missing key seeds it', async (t) => {
    const keys = [unique('m1'), unique('m2')]
    const before = await store.lookup(keys, 'rk', E())
    await store.bump(keys)
    const after = await store.lookup(keys, 'rk', E())
    t.same(after.versions.map(BigInt), before.versions.map((v) => BigInt(v) + 1n))
    const fresh = unique('never-seen')
    await store.bump([fresh])
    const seeded = await store.lookup([fresh], 'rk', E())
    t.ok(Number(seeded.versions[0]) > 1e15)
  })

  await t.test('delete drops one entry', async (t) => {
    const keys = [unique('del')]
    const prefix = E()
    const { entryKey: key } = await store.lookup(keys, 'rk', prefix)
    await store.set(key, Buffer.from('x'), 60_000)
    await store.delete(key)
    t.equal((await store.lookup(keys, 'rk', prefix)).entry, undefined)
  })

  await t.test('a lost version key never brings back an entry of an earlier generation', async (t) => {
    const key = unique('lost')
    const prefix = E()
    const seen = new Set<string>()
    for (let round = 0; round < 4; round++) {
      const before = await store.lookup([key], 'rk', prefix)
      t.notOk(seen.has(before.versions[0] as string), `round ${round}: version ${before.versions[0]} is new`)
      t.equal(before.entry, undefined, `round ${round}: nothing from an earlier generation`)
      seen.add(before.versions[0] as string)
      await store.set(before.entryKey, Buffer.from(`round ${round}`), 60_000)
      if (round % 2 === 1) {
        await store.bump([key])
        seen.add((await store.lookup([key], 'rk', prefix)).versions[0] as string)
      }
      await kit.loseVersions(store, [key])
    }
  })
}
