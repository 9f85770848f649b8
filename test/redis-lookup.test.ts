import t, { type Test } from 'tap'
import { Cluster, Redis } from 'ioredis'
import { entryKey } from '../lib/core/keys.js'
import { keySlot } from '../lib/store/cluster-slot.js'
import { RedisStore } from '../lib/store/redis.js'
import { RedisCluster, startRedis, type RedisServer } from './helpers/redis.js'

/**
 * The Redis lookup of DESIGN §3: a steady-state hit is one plain MGET of the
 * versions and the entry the remembered versions lead to; a moved or unknown
 * version costs a second round trip, never a hit on another generation.
 */

const server = await startRedis()
const admin = server.client()
t.teardown(async () => {
  admin.disconnect()
  await server.stop()
})

/** Calls per command since the last reset (INFO commandstats also counts commands run by scripts). */
async function commandCalls(nodes: Redis[]): Promise<Record<string, number>> {
  const calls: Record<string, number> = {}
  for (const node of nodes) {
    const info = await node.info('commandstats')
    for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls[m[1] as string] = (calls[m[1] as string] ?? 0) + Number(m[2])
  }
  for (const admin of ['info', 'config|resetstat', 'cluster|slots', 'cluster|nodes', 'cluster|info', 'command', 'ping', 'command|docs', 'command|count']) delete calls[admin]
  return calls
}

async function resetStats(nodes: Redis[]): Promise<void> {
  for (const node of nodes) await node.config('RESETSTAT')
}

/** The commands clients sent to one server while `fn` ran, in order, as MONITOR sees them (not those run by scripts). */
async function clientCommands(on: RedisServer, fn: () => Promise<unknown>): Promise<string[]> {
  const base = on.client()
  const monitor = await base.monitor()
  const seen: string[] = []
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (source !== 'lua') seen.push(String(args[0]).toLowerCase())
  })
  await fn()
  const probe = on.client()
  await probe.ping()
  await new Promise((resolve) => setTimeout(resolve, 50))
  probe.disconnect()
  monitor.disconnect()
  base.disconnect()
  // Connection handshakes of the probe and monitor clients are not the store's.
  return seen.filter((c) => !['ping', 'info', 'hello', 'client', 'select'].includes(c))
}

let n = 0
const fresh = (what: string) => `lk${++n}:${what}`

t.test('a steady-state hit is one plain MGET, with no Lua', async (t) => {
  const client = server.client()
  t.teardown(() => client.disconnect())
  const store = new RedisStore({ client })
  const keys = [fresh('epoch'), fresh('v:post'), fresh('v:posts')]
  await store.lookup([fresh('warm')], 'rk', 'lk:e:') // loads the seed script
  let first: Awaited<ReturnType<RedisStore['lookup']>> | undefined
  t.same(await clientCommands(server, async () => (first = await store.lookup(keys, 'rk', 'lk:e:'))), ['mget', 'evalsha'], 'unknown versions: read, then seeded (no entry read: a fresh version has none)')
  t.equal(first?.entry, undefined)
  await store.set(first?.entryKey as string, Buffer.from('cached'), 60_000)
  let hit: Awaited<ReturnType<RedisStore['lookup']>> | undefined
  t.same(await clientCommands(server, async () => (hit = await store.lookup(keys, 'rk', 'lk:e:'))), ['mget'], 'a hit: one MGET')
  t.equal(hit?.entry?.toString(), 'cached')
  t.same(hit?.versions, first?.versions)
  t.equal(hit?.entryKey, entryKey('lk:e:', keys, hit?.versions as string[], 'rk'), 'the entry key keys.ts derives')
  t.same(await clientCommands(server, () => store.lookup(keys, 'other-request', 'lk:e:')), ['mget'], 'a miss with known versions: one MGET too')

  await resetStats([admin])
  for (let i = 0; i < 20; i++) await store.lookup(keys, 'rk', 'lk:e:')
  t.same(await commandCalls([admin]), { mget: 20 }, 'Redis ran 20 MGETs for 20 hits, and nothing else')
})

t.test('a stale remembered version never produces a hit on another generation', async (t) => {
  const clientA = server.client()
  const clientB = server.client()
  t.teardown(() => {
    clientA.disconnect()
    clientB.disconnect()
  })
  const a = new RedisStore({ client: clientA })
  const b = new RedisStore({ client: clientB })
  const keys = [fresh('epoch'), fresh('v:post:1'), fresh('v:posts')]
  const prefix = 'stale:e:'

  const v1 = await a.lookup(keys, 'rk', prefix)
  await a.set(v1.entryKey, Buffer.from(`under ${v1.versions.join(',')}`), 60_000)
  t.equal((await a.lookup(keys, 'rk', prefix)).entry?.toString(), `under ${v1.versions.join(',')}`, 'A hits, remembering v1')

  await b.bump([keys[1] as string]) // another instance bumps between two of A's hits
  let afterBump: Awaited<ReturnType<RedisStore['lookup']>> | undefined
  t.same(await clientCommands(server, async () => (afterBump = await a.lookup(keys, 'rk', prefix))), ['mget', 'get'], 'the moved version costs a second read')
  t.equal(afterBump?.entry, undefined, 'the entry of the old generation is not served')
  t.equal(BigInt(afterBump?.versions[1] as string), BigInt(v1.versions[1] as string) + 1n, 'A sees the bumped version')
  t.not(afterBump?.entryKey, v1.entryKey)
  t.same(await clientCommands(server, () => a.lookup(keys, 'rk', prefix)), ['mget'], 'and remembers it: one MGET again')

  // Randomized interleavings: every entry holds the versions it was stored under;
  // every hit must be under the versions Redis holds at that moment.
  const stores = [a, b]
  let hits = 0
  for (let step = 0; step < 400; step++) {
    const store = stores[step % 2] as RedisStore
    const roll = (step * 7919) % 10
    if (roll < 2) {
      await stores[(step + 1) % 2]?.bump([keys[roll === 0 ? 0 : 2] as string])
      continue
    }
    const rk = `rk${step % 5}`
    const found = await store.lookup(keys, rk, prefix)
    const current = (await admin.mget(...keys)) as string[]
    if (found.versions.join() !== current.join()) t.fail(`step ${step}: read ${found.versions.join()}, Redis holds ${current.join()}`)
    if (found.entry === undefined) await store.set(found.entryKey, Buffer.from(`${rk} under ${found.versions.join(',')}`), 60_000)
    else {
      hits++
      if (found.entry.toString() !== `${rk} under ${current.join(',')}`) t.fail(`step ${step}: served ${found.entry.toString()} under ${current.join(',')}`)
    }
  }
  t.ok(hits > 100, `${hits} hits checked`)
})

t.test('read your writes across two instances: an acknowledged bump is seen by the other at once', async (t) => {
  const clientA = server.client()
  const clientB = server.client()
  t.teardown(() => {
    clientA.disconnect()
    clientB.disconnect()
  })
  const a = new RedisStore({ client: clientA })
  const b = new RedisStore({ client: clientB })
  const keys = [fresh('epoch'), fresh('v:user')]
  for (const store of [a, b]) {
    const found = await store.lookup(keys, 'rk', 'ryw:e:')
    if (found.entry === undefined) await store.set(found.entryKey, Buffer.from('old'), 60_000)
  }
  t.equal((await a.lookup(keys, 'rk', 'ryw:e:')).entry?.toString(), 'old')
  t.equal((await b.lookup(keys, 'rk', 'ryw:e:')).entry?.toString(), 'old')
  for (let round = 0; round < 5; round++) {
    const [writer, reader] = round % 2 === 0 ? [a, b] : [b, a]
    await writer.bump([keys[1] as string])
    const seen = await reader.lookup(keys, 'rk', 'ryw:e:')
    t.equal(seen.entry, undefined, `round ${round}: the reader misses right after the writer's bump`)
    await reader.set(seen.entryKey, Buffer.from(`round ${round}`), 60_000)
    t.equal((await writer.lookup(keys, 'rk', 'ryw:e:')).entry?.toString(), `round ${round}`, 'and the writer hits what the reader stored')
  }
})

t.test('a bump landing while a leader runs orphans the entry it stores', async (t) => {
  const clientA = server.client()
  const clientB = server.client()
  t.teardown(() => {
    clientA.disconnect()
    clientB.disconnect()
  })
  const a = new RedisStore({ client: clientA })
  const b = new RedisStore({ client: clientB })
  const keys = [fresh('epoch'), fresh('v:post')]
  await a.lookup(keys, 'warm', 'race:e:')
  const miss = await a.lookup(keys, 'rk', 'race:e:')
  t.equal(miss.entry, undefined, 'the leader misses and runs its handler')
  await b.bump([keys[1] as string]) // lands while the handler runs
  await a.set(miss.entryKey, Buffer.from('computed before the bump'), 60_000)
  t.equal((await a.lookup(keys, 'rk', 'race:e:')).entry, undefined, 'the leader itself does not serve it')
  t.equal((await b.lookup(keys, 'rk', 'race:e:')).entry, undefined, 'nor does the instance that bumped')
})

t.test('an ioredis keyPrefix on the caller client is honoured: hits, and every key under the prefix', async (t) => {
  const own = await startRedis()
  const plain = own.client()
  const prefixed = new Redis({ host: '127.0.0.1', port: own.port, keyPrefix: 'tenant1:' })
  prefixed.on('error', () => {})
  t.teardown(async () => {
    plain.disconnect()
    prefixed.disconnect()
    await own.stop()
  })
  const store = new RedisStore({ client: prefixed })
  const keys = ['gc:epoch', 'gc:v:abc']
  const first = await store.lookup(keys, 'rk', 'gc:e:')
  await store.set(first.entryKey, Buffer.from('prefixed'), 60_000)
  let hits = 0
  for (let i = 0; i < 10; i++) if ((await store.lookup(keys, 'rk', 'gc:e:')).entry?.toString() === 'prefixed') hits++
  t.equal(hits, 10, 'every lookup after the store hits')
  await store.bump([keys[1] as string])
  t.equal((await store.lookup(keys, 'rk', 'gc:e:')).entry, undefined, 'a bump still orphans')
  t.equal(await plain.exists('tenant1:gc:epoch', 'tenant1:gc:v:abc', `tenant1:${first.entryKey}`), 3, 'versions and entry live under the prefix')
  t.equal(await plain.exists('gc:epoch', 'gc:v:abc', first.entryKey), 0, 'and nothing outside it')
  t.equal(await plain.dbsize(), 3, 'no other key was written')
})

t.test('no orphan pile-up: 30 generations of 100 URLs leave at most 250 keys', async (t) => {
  const own = await startRedis()
  const clientA = own.client()
  const clientB = own.client()
  t.teardown(async () => {
    clientA.disconnect()
    clientB.disconnect()
    await own.stop()
  })
  const a = new RedisStore({ client: clientA })
  const b = new RedisStore({ client: clientB })
  const keys = ['gc:epoch', 'gc:v:route', 'gc:v:posts']
  let hits = 0
  for (let generation = 0; generation < 30; generation++) {
    for (let url = 0; url < 100; url++) {
      const found = await a.lookup(keys, `/posts/${url}`, 'gc:e:')
      if (found.entry !== undefined) hits++
      else await a.set(found.entryKey, Buffer.from(`generation ${generation}`), 600_000)
      if (generation === 29 && url === 0) {
        const old = entryKey('gc:e:', keys, [found.versions[0], found.versions[1], String(BigInt(found.versions[2] as string) - 1n)] as string[], '/posts/0')
        t.equal(await clientA.exists(old), 0, 'the replaced entry is gone')
      }
    }
    // Bumps come from this instance and from another one, in turn.
    await (generation % 2 === 0 ? a : b).bump(['gc:v:posts'])
  }
  t.equal(hits, 0, 'every generation starts with misses')
  await clientA.ping()
  const count = await clientA.dbsize()
  t.ok(count <= 250, `${count} keys in Redis after 30 generations × 100 URLs`)
  t.ok(count >= 100, 'the current generation is still there')
})

t.test('the replaced entry is deleted only after the new one is stored', async (t) => {
  const client = server.client()
  t.teardown(() => client.disconnect())
  const store = new RedisStore({ client })
  const keys = [fresh('epoch'), fresh('v:g')]
  const v1 = await store.lookup(keys, 'rk', 'order:e:')
  await store.set(v1.entryKey, Buffer.from('v1'), 60_000)
  await store.bump([keys[1] as string])
  const v2 = await store.lookup(keys, 'rk', 'order:e:')
  t.equal(v2.entry, undefined)
  t.equal(await admin.exists(v1.entryKey), 1, 'after the lookup that saw the new generation, the old entry is still there')
  await store.set(v2.entryKey, Buffer.from('v2'), 60_000)
  await client.ping()
  t.equal(await admin.exists(v1.entryKey), 0, 'once the new one is stored, the old one is deleted')
  t.equal(await admin.get(v2.entryKey), 'v2')
})

t.test('a failing delete of the replaced entry never fails the store', async (t) => {
  await admin.call('ACL', 'SETUSER', 'nodel', 'on', 'nopass', '~*', '+@all', '-del')
  const client = new Redis({ host: '127.0.0.1', port: server.port, username: 'nodel', password: 'x' })
  client.on('error', () => {})
  t.teardown(() => client.disconnect())
  const store = new RedisStore({ client })
  const keys = [fresh('epoch'), fresh('v:g')]
  const v1 = await store.lookup(keys, 'rk', 'nodel:e:')
  await store.set(v1.entryKey, Buffer.from('v1'), 60_000)
  await store.bump([keys[1] as string])
  const v2 = await store.lookup(keys, 'rk', 'nodel:e:')
  await t.resolves(store.set(v2.entryKey, Buffer.from('v2'), 60_000), 'the store succeeds')
  await client.ping()
  t.equal(await admin.get(v2.entryKey), 'v2')
  t.equal(await admin.exists(v1.entryKey), 1, 'the delete was refused: the orphan is left to its TTL')
})

t.test('a store remembers within memoBytes; a bad bound is an option error', async (t) => {
  const client = server.client()
  t.teardown(() => client.disconnect())
  t.throws(() => new RedisStore({ client, memoBytes: 10 }), { code: 'GC_INVALID_OPTION', message: /option memoBytes must be an integer of at least 1024, got 10/ })
  t.throws(() => new RedisStore({ client, memoBytes: 1.5e9 + 0.5 }), { code: 'GC_INVALID_OPTION' })
  const store = new RedisStore({ client, memoBytes: 4096 })
  const keys = Array.from({ length: 200 }, (_, i) => fresh(`many${i}`))
  for (const key of keys) await store.lookup([key], 'rk', 'small:e:')
  // The first keys were forgotten (the memo holds a few KB): their next lookup reads twice, and is still right.
  let found: Awaited<ReturnType<RedisStore['lookup']>> | undefined
  t.same(await clientCommands(server, async () => (found = await store.lookup([keys[0] as string], 'rk', 'small:e:'))), ['mget', 'get'])
  t.same(found?.versions, [await admin.get(keys[0] as string)])
})

t.test('key slots match CLUSTER KEYSLOT, hash tags included', async (t) => {
  const cluster = await RedisCluster.start()
  const node = cluster.nodes[0]?.client() as Redis
  t.teardown(async () => {
    node.disconnect()
    await cluster.stop()
  })
  for (const key of ['gc:epoch', 'gc:v:abc', 'tenant:gc:e:0123abcd', '{user1000}.following', 'foo{}{bar}', 'foo{{bar}}zap', 'foo{bar}{zap}', 'ünïcødé:key', '']) {
    t.equal(keySlot(key), await node.cluster('KEYSLOT', key), `slot of ${JSON.stringify(key)}`)
  }
  await t.test('on a Cluster', (t) => clusterSuite(t, cluster))
})

async function clusterSuite(t: Test, cluster: RedisCluster): Promise<void> {
  const client = cluster.client()
  const nodes = cluster.nodes.map((node) => node.client())
  t.teardown(async () => {
    for (const node of nodes) node.disconnect()
    await client.quit()
  })

  await t.test('a hit is one command per slot group, sent together, with no Lua and no CROSSSLOT', async (t) => {
    const store = new RedisStore({ client })
    const keys = ['cl:epoch', 'cl:v:post:1', 'cl:v:posts']
    const first = await store.lookup(keys, 'rk', 'cl:e:')
    await store.set(first.entryKey, Buffer.from('cluster hit'), 60_000)
    const slots = new Set(await Promise.all([...keys, first.entryKey].map((k) => nodes[0]?.cluster('KEYSLOT', k) as Promise<number>)))
    await resetStats(nodes)
    const hit = await store.lookup(keys, 'rk', 'cl:e:')
    t.equal(hit.entry?.toString(), 'cluster hit')
    t.ok(slots.size >= 3, `the keys spread over ${slots.size} slots: no hash tag pins them`)
    t.same(await commandCalls(nodes), { mget: slots.size }, 'one MGET per slot, nothing else')
  })

  await t.test('keys sharing a slot are read in one MGET', async (t) => {
    const store = new RedisStore({ client })
    const keys = ['{tag}:epoch', '{tag}:v:a', '{tag}:v:b']
    const first = await store.lookup(keys, 'rk', '{tag}:e:')
    await store.set(first.entryKey, Buffer.from('tagged'), 60_000)
    await resetStats(nodes)
    t.equal((await store.lookup(keys, 'rk', '{tag}:e:')).entry?.toString(), 'tagged')
    t.same(await commandCalls(nodes), { mget: 1 }, 'a user prefix with a hash tag: the whole lookup is one MGET')
  })

  await t.test('a stale remembered version and read-your-writes across instances', async (t) => {
    const other = cluster.client()
    t.teardown(() => other.quit())
    const a = new RedisStore({ client })
    const b = new RedisStore({ client: other })
    const keys = ['st:epoch', 'st:v:post:1', 'st:v:posts']
    const v1 = await a.lookup(keys, 'rk', 'st:e:')
    await a.set(v1.entryKey, Buffer.from('v1'), 60_000)
    t.equal((await a.lookup(keys, 'rk', 'st:e:')).entry?.toString(), 'v1')
    t.equal((await b.lookup(keys, 'rk', 'st:e:')).entry?.toString(), 'v1')
    await b.bump([keys[2] as string])
    t.equal((await a.lookup(keys, 'rk', 'st:e:')).entry, undefined, 'A does not serve the old generation after B bumped')
    const v2 = await b.lookup(keys, 'rk', 'st:e:')
    t.equal(v2.entry, undefined)
    await b.set(v2.entryKey, Buffer.from('v2'), 60_000)
    t.equal((await a.lookup(keys, 'rk', 'st:e:')).entry?.toString(), 'v2')
    t.equal(await nodes[0]?.cluster('KEYSLOT', v1.entryKey).then(() => client.exists(v1.entryKey)), 0, 'the replaced entry was deleted')
  })

  await t.test('a new Cluster client: its first lookups wait for every node to be checked, they are not refused', async (t) => {
    // Each node connecting, becoming ready and being checked is a change of its own; the first lookup must outlast them all.
    for (let i = 0; i < 5; i++) {
      const other = cluster.client()
      const store = new RedisStore({ client: other })
      const found = await store.lookup(['nw:epoch', `nw:v:${i}`, 'nw:v:all'], 'rk', 'nw:e:').finally(() => other.quit())
      t.equal(found.versions.length, 3, `client ${i}: the versions were read`)
    }
  })

  await t.test('a keyPrefix on a Cluster client', async (t) => {
    const prefixed = new Cluster(cluster.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })), { keyPrefix: 'cp:' })
    prefixed.on('error', () => {})
    t.teardown(() => prefixed.quit())
    const store = new RedisStore({ client: prefixed })
    const keys = ['gc:epoch', 'gc:v:a', 'gc:v:b', 'gc:v:c']
    const first = await store.lookup(keys, 'rk', 'gc:e:')
    await store.set(first.entryKey, Buffer.from('prefixed cluster'), 60_000)
    t.equal((await store.lookup(keys, 'rk', 'gc:e:')).entry?.toString(), 'prefixed cluster')
    t.equal(await client.exists(`cp:${first.entryKey}`), 1, 'the entry lives under the prefix')
    t.equal(await client.get(`cp:${keys[1]}`), first.versions[1], 'and so do the versions')
  })
}
