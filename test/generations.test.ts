import t from 'tap'
import { GenerationalCache, MemoryStore } from '../lib/index.js'
import { FaultyStore, until } from './helpers/faulty-store.js'

const silent = { warn() {}, error() {} }

t.test('the epoch comes first in every lookup; clear() moves it and orphans everything', async (t) => {
  const cache = new GenerationalCache()
  const first = await cache.lookup(['gc:v:a'], 'rk')
  await cache.store.set(first.entryKey, Buffer.from('x'), 60_000)
  t.equal(first.versions.length, 2, 'epoch and the one key')
  t.ok((await cache.lookup(['gc:v:a'], 'rk')).entry)
  await cache.clear()
  const after = await cache.lookup(['gc:v:a'], 'rk')
  t.equal(BigInt(after.versions[0] as string), BigInt(first.versions[0] as string) + 1n)
  t.equal(after.versions[1], first.versions[1], 'group versions untouched: clear is O(1)')
  t.equal(after.entry, undefined)
})

t.test('two caches with different prefixes do not see each other', async (t) => {
  const store = new MemoryStore()
  const a = new GenerationalCache({ store, prefix: 'a' })
  const b = new GenerationalCache({ store, prefix: 'b' })
  const found = await a.lookup([], 'rk')
  await a.write(found.entryKey, Buffer.from('x'), 60_000)
  t.equal((await b.lookup([], 'rk')).entry, undefined)
  await b.clear()
  t.ok((await a.lookup([], 'rk')).entry, 'clearing b leaves a alone')
})

t.test('a failed bump is kept, blocks lookups naming its keys, and is retried until it lands', async (t) => {
  const faulty = new FaultyStore(new MemoryStore())
  const cache = new GenerationalCache({ store: faulty, logger: silent })
  const key = cache.versionKeys(['user:id'], { id: 1 })[0] as string
  const other = cache.versionKeys(['user:id'], { id: 2 })[0] as string
  const before = await cache.lookup([key], 'rk')
  faulty.setFault('error')
  t.equal(await cache.bump('user:id', { id: 1 }), false, 'kept for retry')
  t.equal(cache.getStats().pendingBumps, 1)
  faulty.setFault('none')
  await t.rejects(async () => cache.lookup([key], 'rk'), { name: 'PendingBumpError' })
  await t.resolves(async () => cache.lookup([other], 'rk'), 'other groups are unaffected')
  await until(() => cache.getStats().pendingBumps === 0, 'the retry to land')
  const after = await cache.lookup([key], 'rk')
  t.ok(BigInt(after.versions[1] as string) > BigInt(before.versions[1] as string), 'the bump landed')
  await cache.close()
})

t.test('a pending clear() blocks every lookup', async (t) => {
  const faulty = new FaultyStore(new MemoryStore())
  const cache = new GenerationalCache({ store: faulty, logger: silent })
  faulty.setFault('error')
  await cache.clear()
  faulty.setFault('none')
  await t.rejects(async () => cache.lookup(['gc:v:anything'], 'rk'), { name: 'PendingBumpError' })
  await cache.close()
  t.equal(cache.getStats().pendingBumps, 0, 'close flushed the pending bump')
})

t.test('close reports bumps that never landed', async (t) => {
  const errors: unknown[] = []
  const faulty = new FaultyStore(new MemoryStore())
  const cache = new GenerationalCache({ store: faulty, logger: { warn() {}, error: (o) => errors.push(o) } })
  faulty.setFault('error')
  await cache.bump('posts')
  faulty.bump = async () => {
    throw new Error('still down')
  }
  faulty.setFault('none')
  await cache.close()
  t.equal(cache.getStats().pendingBumps, 1)
  t.match(errors.at(-1), { keys: [cache.versionKeys(['posts'])[0]] })
})

t.test('store calls are bounded by the timeout', async (t) => {
  const faulty = new FaultyStore(new MemoryStore())
  const cache = new GenerationalCache({ store: faulty, timeout: 20, logger: silent })
  faulty.setFault('hang')
  await t.rejects(async () => cache.lookup([], 'rk'), { code: 'GC_STORE_TIMEOUT', message: /within 20 ms/ })
  await t.rejects(cache.write('k', Buffer.from('x'), 1000), { code: 'GC_STORE_TIMEOUT' })
  faulty.setFault('none')
})

t.test('concurrent bumps through the engine each count', async (t) => {
  const cache = new GenerationalCache()
  const key = cache.versionKeys(['hot'])[0] as string
  const before = await cache.lookup([key], 'rk')
  await Promise.all([cache.bump('hot'), cache.bump('hot')])
  const after = await cache.lookup([key], 'rk')
  t.equal(BigInt(after.versions[1] as string), BigInt(before.versions[1] as string) + 2n)
  t.equal(cache.getStats().bumps, 2)
})

t.test('a bump that fails while a retry is under way joins the next retry; both land', async (t) => {
  const faulty = new FaultyStore(new MemoryStore())
  const cache = new GenerationalCache({ store: faulty, timeout: 30, logger: silent })
  const [a, b] = cache.versionKeys(['a', 'b'])
  const before = await cache.lookup([a as string, b as string], 'rk')
  faulty.setFault('error')
  await cache.bump('a')
  faulty.setFault('hang')
  await new Promise((resolve) => setTimeout(resolve, 60)) // the first retry is now waiting on the hung store
  t.equal(await cache.bump('b'), false)
  t.equal(cache.getStats().pendingBumps, 2)
  faulty.setFault('none')
  await until(() => cache.getStats().pendingBumps === 0, 'both bumps to land')
  const after = await cache.lookup([a as string, b as string], 'rk')
  t.ok(BigInt(after.versions[1] as string) > BigInt(before.versions[1] as string), 'a moved')
  t.ok(BigInt(after.versions[2] as string) > BigInt(before.versions[2] as string), 'b moved')
  await cache.close()
})

t.test('bumping nothing asks the store nothing', async (t) => {
  const faulty = new FaultyStore(new MemoryStore())
  const cache = new GenerationalCache({ store: faulty, logger: silent })
  faulty.setFault('error')
  t.equal(await cache.bumpMany([]), true)
  t.equal(cache.getStats().errors, 0)
})

t.test('many distinct group names keep resolving (the compiled-definition memo is bounded)', async (t) => {
  const cache = new GenerationalCache()
  const first = cache.versionKeys(['name0'])[0]
  for (let i = 0; i < 1500; i++) cache.versionKeys([`name${i}`])
  t.equal(cache.versionKeys(['name0'])[0], first)
})

t.test('option errors show the value given', async (t) => {
  t.throws(() => new GenerationalCache({ ttl: '60' as never }), { message: 'option ttl must be a positive number, got "60"' })
  t.throws(() => new GenerationalCache({ timeout: (() => 1) as never }), { message: 'option timeout must be a positive number, got () => 1' })
})

t.test('without a logger, faults go to the console', async (t) => {
  const seen: unknown[][] = []
  const { warn, error } = console
  console.warn = (...args: unknown[]) => void seen.push(['warn', ...args])
  console.error = (...args: unknown[]) => void seen.push(['error', ...args])
  t.teardown(() => Object.assign(console, { warn, error }))
  const faulty = new FaultyStore(new MemoryStore())
  const cache = new GenerationalCache({ store: faulty })
  faulty.setFault('error')
  await cache.bump('g')
  faulty.setFault('none')
  await until(() => cache.getStats().pendingBumps === 0, 'the retry')
  t.match(seen[0], ['error', /bump failed; kept for retry/])
  t.match(seen[1], ['warn', /pending bumps landed/])
})
