import t from 'tap'
import { MemoryStore, RedisStore, type Store } from '../lib/index.js'
import { startRedis } from './helpers/redis.js'

/**
 * The window of a soft bump as each store reports it (DESIGN §10): from the
 * latest soft bump that applies to its end, the earliest end among them,
 * which is exclusive. The HTTP layer marks answers stale from `bumpedAt` and
 * stops answering at `until`.
 */

const PREFIX = 'gc:e:'
const server = await startRedis()
const client = server.client()
t.teardown(async () => {
  client.disconnect()
  await server.stop()
})

const kits: { name: string; make(): Store }[] = [
  { name: 'memory', make: () => new MemoryStore() },
  { name: 'redis', make: () => new RedisStore({ client }) }
]

let n = 0
for (const kit of kits) {
  t.test(`${kit.name}: two soft bumps run from the later one to the earlier end, and each grace is over at exactly its end`, async (t) => {
    t.clock.enter()
    t.teardown(() => t.clock.exit())
    const store = kit.make()
    t.teardown(() => store.close())
    const keys = [`w${++n}:epoch`, `w${n}:v:a`, `w${n}:v:b`]
    const [, a, b] = keys as [string, string, string]
    const first = await store.lookup(keys, 'req', PREFIX)
    await store.set(first.entryKey, Buffer.from('gen 1'), 60_000)
    const t0 = Date.now()
    await store.bump([a], { graceMs: 30_000 })
    t.clock.advance(5_000)
    await store.bump([b], { graceMs: 10_000 })
    const now = await store.lookup(keys, 'req', PREFIX)
    const both = await store.lookupGrace?.(keys, now.versions, 'req', PREFIX)
    t.equal(both?.entry?.toString(), 'gen 1', 'both keys go back: the entry from before the two bumps')
    t.equal(both?.bumpedAt, t0 + 5_000, 'stale since the later bump')
    t.equal(both?.until, t0 + 15_000, 'until the earlier end')

    t.clock.advance(9_999)
    t.equal((await store.lookupGrace?.(keys, now.versions, 'req', PREFIX))?.entryKey, first.entryKey, 'a millisecond before b’s end, both still go back')
    t.clock.advance(1)
    const onlyA = await store.lookupGrace?.(keys, now.versions, 'req', PREFIX)
    t.not(onlyA?.entryKey, first.entryKey, 'at b’s end, only a goes back')
    t.equal(onlyA?.bumpedAt, t0)
    t.equal(onlyA?.until, t0 + 30_000)
    t.clock.advance(15_000)
    t.equal(await store.lookupGrace?.(keys, now.versions, 'req', PREFIX), undefined, 'at a’s end, nothing')
  })

  t.test(`${kit.name}: a soft bump of a version never seen has no previous generation at all`, async (t) => {
    const store = kit.make()
    t.teardown(() => store.close())
    const keys = [`w${++n}:epoch`, `w${n}:v:new`]
    await store.bump([keys[1] as string], { graceMs: 30_000 })
    const seeded = await store.lookup(keys, 'req', PREFIX)
    t.equal(await store.lookupGrace?.(keys, seeded.versions, 'req', PREFIX), undefined)
  })
}
