import t from 'tap'
import { GenerationalCache, MemoryStore } from '../lib/index.js'
import { FaultyStore, until } from './helpers/faulty-store.js'
import type { Store } from '../lib/index.js'

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
  // A function is shown as its source, which the loader may have reformatted (tsx prints `()=>1`).
  t.throws(() => new GenerationalCache({ ttl: '60' as never }), { message: 'option ttl must be a positive number, got "60"' })
  t.throws(() => new GenerationalCache({ timeout: (() => 1) as never }), { message: /^option timeout must be a positive number, got \(\) ?=> ?1$/ })
})

t.test('without a logger, faults go to the console', async (t) => {
  const seen: unknown[][] = []
  const { warn, error, info } = console
  console.warn = (...args: unknown[]) => void seen.push(['warn', ...args])
  console.error = (...args: unknown[]) => void seen.push(['error', ...args])
  console.info = (...args: unknown[]) => void seen.push(['info', ...args])
  t.teardown(() => Object.assign(console, { warn, error, info }))
  const faulty = new FaultyStore(new MemoryStore())
  const cache = new GenerationalCache({ store: faulty })
  faulty.setFault('error')
  await cache.bump('g')
  faulty.setFault('none')
  await until(() => cache.getStats().pendingBumps === 0, 'the retry')
  t.match(seen[0], ['error', /bump failed; kept for retry/])
  t.match(seen[1], ['info', /pending bumps landed/])
})

/** A logger that keeps what it is given. */
function recorder() {
  const lines: { level: string; obj: Record<string, unknown>; msg: string | undefined }[] = []
  const at = (level: string) => (obj: unknown, msg?: string) => void lines.push({ level, obj: obj as Record<string, unknown>, msg })
  return { lines, logger: { warn: at('warn'), error: at('error'), info: at('info') } }
}

/** Counts the keys of every bump call that reaches the store. */
function countBumps(store: Store): number[] {
  const sizes: number[] = []
  const bump = store.bump.bind(store)
  store.bump = (keys) => (sizes.push(keys.length), bump(keys))
  return sizes
}

t.test('store faults are logged once per interval, through the request logger when given, then as one line of counts', async (t) => {
  const app = recorder()
  const request = recorder()
  const cache = new GenerationalCache({ logger: app.logger, faultLogInterval: 1000 })
  for (let i = 0; i < 100; i++) cache.reportFault(new Error(`down ${i}`), { what: i % 2 ? 'lookup' : 'write', route: 'GET /x', log: request.logger })
  t.equal(cache.getStats().errors, 100, 'every fault is counted')
  t.equal(request.lines.length, 1, 'one line logged, not 100')
  t.match(request.lines[0], { level: 'error', obj: { route: 'GET /x', err: { message: 'down 0' } }, msg: /store write failed; served uncached/ })
  await until(() => app.lines.length > 0, 'the counts to be logged at the end of the interval')
  t.match(app.lines[0], { level: 'warn', obj: { suppressed: { lookup: 50, write: 49 }, total: 99 }, msg: /99 more store faults/ })
  cache.reportFault(new Error('later'), { what: 'lookup' })
  t.match(app.lines[1], { level: 'error', obj: { err: { message: 'later' } } }, 'the next interval logs its first fault in full')
})

t.test('a failed bump names its groups in the log', async (t) => {
  const { lines, logger } = recorder()
  const faulty = new FaultyStore(new MemoryStore())
  const cache = new GenerationalCache({ store: faulty, logger })
  faulty.setFault('error')
  await cache.bumpMany(['user:id', 'posts'], { id: 42 })
  t.match(lines[0], { level: 'error', obj: { groups: ['user:42', 'posts'] }, msg: /bump failed/ })
  const many = Array.from({ length: 30 }, (_, i) => `g${i}`)
  const other = recorder()
  const second = new GenerationalCache({ store: faulty, logger: other.logger })
  await second.bumpKeys(many, many)
  t.match(other.lines[0], { obj: { groups: many.slice(0, 20), more: 10 } }, 'at most 20 names, and how many more')
  faulty.setFault('none')
  await cache.close()
  await second.close()
})

t.test('past maxPendingBumps the pending keys are dropped for one epoch bump, which blocks every lookup until it lands', async (t) => {
  const { lines, logger } = recorder()
  const faulty = new FaultyStore(new MemoryStore())
  const cache = new GenerationalCache({ store: faulty, logger, maxPendingBumps: 3, breaker: false })
  const before = await cache.lookup(['gc:v:other'], 'rk')
  await cache.write(before.entryKey, Buffer.from('old'), 60_000)
  const events: unknown[] = []
  cache.onBump((event) => void events.push(event))
  faulty.setFault('error')
  for (const name of ['a', 'b', 'c']) await cache.bump(name)
  t.equal(cache.getStats().pendingBumps, 3)
  await cache.bump('d')
  t.equal(cache.getStats().pendingBumps, 1, 'one pending key: the epoch')
  t.match(lines.find((l) => /too many pending bumps/.test(l.msg ?? '')), { level: 'warn', obj: { dropped: 4, maxPendingBumps: 3 } })
  await cache.bump('e')
  t.equal(cache.getStats().pendingBumps, 1, 'nothing more is kept while the epoch is pending')
  faulty.setFault('none')
  t.throws(() => cache.lookup(['gc:v:other'], 'rk'), { name: 'PendingBumpError' }, 'a group never bumped is blocked too')
  await until(() => cache.getStats().pendingBumps === 0, 'the epoch bump to land')
  const after = await cache.lookup(['gc:v:other'], 'rk')
  t.ok(BigInt(after.versions[0] as string) > BigInt(before.versions[0] as string), 'the epoch moved')
  t.equal(after.entry, undefined, 'the entry from before is orphaned')
  t.same(events, [{ keys: [cache.epochKey], groups: ['*'] }])
  await cache.close()
  t.throws(() => new GenerationalCache({ maxPendingBumps: 1.5 }), { code: 'GC_INVALID_OPTION', message: 'option maxPendingBumps must be a positive integer, got 1.5' })
  t.throws(() => new GenerationalCache({ maxPendingBumps: (() => 1) as never }), { message: /^option maxPendingBumps must be a positive integer, got \(\) ?=> ?1$/ })
})

t.test('pending bumps are retried in chunks (never one call with every key), and listeners get their names', async (t) => {
  const faulty = new FaultyStore(new MemoryStore())
  const cache = new GenerationalCache({ store: faulty, logger: recorder().logger, maxPendingBumps: 200_000, breaker: false })
  const sizes = countBumps(faulty)
  const events: { keys: readonly string[]; groups: readonly string[] }[] = []
  cache.onBump((event) => void events.push(event))
  faulty.setFault('error')
  const names = Array.from({ length: 125_000 }, (_, i) => `user:${i}`)
  await cache.bumpKeys(names.map((n) => `gc:v:${n}`), names)
  t.equal(cache.getStats().pendingBumps, 125_000)
  faulty.setFault('none')
  await until(() => cache.getStats().pendingBumps === 0, 'every chunk to land')
  t.equal(sizes.length, 1 + 125, 'the failed first chunk, then 125 chunks')
  t.ok(sizes.slice(1).every((n) => n === 1000), 'of 1000 keys each')
  t.equal(events.length, 125)
  t.same(events[0]?.groups.slice(0, 2), ['user:0', 'user:1'])
  sizes.length = 0
  t.equal(await cache.bumpKeys(names.map((n) => `gc:v:${n}`), names), true, 'a bump of 125k keys lands')
  t.same(new Set(sizes), new Set([1000]), 'sent 1000 keys per call')
  t.equal(events.length, 126, 'one event for the whole bump')
  await cache.close()
})

t.test('a retry that fails part way keeps what did not land', async (t) => {
  const faulty = new FaultyStore(new MemoryStore())
  const cache = new GenerationalCache({ store: faulty, logger: recorder().logger, breaker: false })
  faulty.setFault('error')
  const keys = Array.from({ length: 2500 }, (_, i) => `gc:v:${i}`)
  await cache.bumpKeys(keys)
  let calls = 0
  const bump = faulty.bump.bind(faulty)
  faulty.bump = async (k) => {
    if (++calls === 2) throw new Error('fails on the second chunk')
    return bump(k)
  }
  faulty.setFault('none')
  await until(() => calls >= 2, 'two chunks tried')
  t.equal(cache.getStats().pendingBumps, 1500, 'the first chunk landed, the rest is kept')
  await until(() => cache.getStats().pendingBumps === 0, 'the rest to land on the next retry')
  await cache.close()
})

t.test('close() stops the retry loop: nothing is sent to the store after it', async (t) => {
  const faulty = new FaultyStore(new MemoryStore())
  const cache = new GenerationalCache({ store: faulty, logger: recorder().logger, breaker: false })
  const sizes = countBumps(faulty)
  faulty.setFault('error')
  await cache.bump('g')
  faulty.close = async () => {}
  await cache.close()
  const sent = sizes.length
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(sizes.length, sent, 'no retry after close')
  t.equal(cache.getStats().pendingBumps, 1)
  t.equal(await cache.bump('h'), false, 'a bump after close is not retried either')
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(sizes.length, sent + 1)
})

t.test('close() with the breaker open does not wait on the store', async (t) => {
  const { lines, logger } = recorder()
  const faulty = new FaultyStore(new MemoryStore())
  const cache = new GenerationalCache({ store: faulty, logger, timeout: 20, breaker: { failures: 1, cooldown: 60_000 } })
  const sizes = countBumps(faulty)
  faulty.setFault('hang')
  await cache.bump('user:id', { id: 7 })
  t.equal(cache.getStats().breaker, 'open')
  await cache.close()
  t.equal(sizes.length, 1, 'only the original bump reached the store')
  t.match(lines.at(-1), { level: 'error', obj: { groups: ['user:7'] }, msg: /closing with bumps that never reached the store/ })
})

t.test('without an info method, recoveries are logged as warnings', async (t) => {
  const warned: unknown[] = []
  const faulty = new FaultyStore(new MemoryStore())
  const cache = new GenerationalCache({ store: faulty, logger: { warn: (_o, msg) => void warned.push(msg), error() {} } })
  faulty.setFault('error')
  await cache.bump('g')
  faulty.setFault('none')
  await until(() => cache.getStats().pendingBumps === 0, 'the retry')
  t.match(warned, [/pending bumps landed/])
  await cache.close()
})

t.test('a bump listener that throws or rejects is logged and never fails the bump or the other listeners', async (t) => {
  const logged: string[] = []
  const cache = new GenerationalCache({ logger: { warn() {}, error: (_obj, msg) => void logged.push(String(msg)) } })
  const heard: string[][] = []
  cache.onBump(() => {
    throw new Error('listener bug')
  })
  cache.onBump(async () => {
    throw new Error('async listener bug')
  })
  const stop = cache.onBump((event) => void heard.push([...event.groups]))
  t.equal(await cache.bump('user:id', { id: 42 }), true, 'the bump landed')
  await until(() => logged.length === 2, 'both failures logged')
  t.same(logged, ['groupcache: a bump listener failed', 'groupcache: a bump listener failed'])
  t.same(heard, [['user:42']], 'the other listener heard the readable group name')
  await cache.clear()
  t.same(heard.at(-1), ['*'], 'clear() names the epoch *')
  await cache.bumpKeys([cache.epochKey])
  t.same(heard.at(-1), ['*'], 'so does a bump of the epoch key given no names')
  await cache.bumpKeys(['gc:v:raw'])
  t.same(heard.at(-1), ['gc:v:raw'], 'a bump given no names is named by its keys')
  stop()
  await cache.bump('user:id', { id: 43 })
  t.equal(heard.length, 4, 'a removed listener hears nothing more')
  await cache.close()
})
