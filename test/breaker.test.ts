import t from 'tap'
import { GenerationalCache, GroupcacheError, MemoryStore } from '../lib/index.js'
import { Breaker } from '../lib/core/breaker.js'
import { FaultyStore, until } from './helpers/faulty-store.js'
import { cli, startRedis } from './helpers/redis.js'
import { STORED, get, redisApp } from './helpers/redis-app.js'

const silent = { warn() {}, error() {}, info() {} }

/** A logger that keeps what it is given. */
function recorder() {
  const lines: { level: string; obj: unknown; msg: string | undefined }[] = []
  const at = (level: string) => (obj: unknown, msg?: string) => void lines.push({ level, obj, msg })
  return { lines, logger: { warn: at('warn'), error: at('error'), info: at('info') } }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

t.test('after `failures` consecutive faults the breaker opens: lookups are refused at once, bumps are kept, nothing reaches the store', async (t) => {
  const faulty = new FaultyStore(new MemoryStore())
  let calls = 0
  const lookup = faulty.lookup.bind(faulty)
  faulty.lookup = (...args) => (calls++, lookup(...args))
  const cache = new GenerationalCache({ store: faulty, timeout: 20, logger: silent, breaker: { failures: 3, cooldown: 60_000 } })
  t.teardown(() => cache.close())
  faulty.setFault('hang')
  for (let i = 0; i < 3; i++) await t.rejects(async () => cache.lookup([], 'rk'), { code: 'GC_STORE_TIMEOUT' })
  t.equal(cache.getStats().breaker, 'open')
  const before = calls
  t.throws(() => cache.lookup([], 'rk'), { code: 'GC_STORE_UNAVAILABLE', message: /circuit breaker is open/ }, 'refused synchronously, without waiting for the timeout')
  await t.rejects(cache.write('k', Buffer.from('x'), 1000), { code: 'GC_STORE_UNAVAILABLE' })
  t.equal(calls, before, 'the store was not called')
  t.equal(await cache.bump('g'), false, 'a bump while open is kept')
  t.equal(cache.getStats().pendingBumps, 1)
  const errors = cache.getStats().errors
  cache.reportFault(new GroupcacheError('GC_STORE_UNAVAILABLE', 'refused'), { what: 'lookup' })
  t.equal(cache.getStats().errors, errors, 'a refusal is not counted as a new store fault')
})

t.test('after the cool-down one probe goes through: success closes the breaker, and pending bumps land', async (t) => {
  const { lines, logger } = recorder()
  const faulty = new FaultyStore(new MemoryStore())
  const cache = new GenerationalCache({ store: faulty, timeout: 20, logger, breaker: { failures: 2, cooldown: 100 } })
  t.teardown(() => cache.close())
  const key = cache.versionKeys(['g'])[0] as string
  const before = await cache.lookup([key], 'rk')
  faulty.setFault('error')
  await t.rejects(async () => cache.lookup([], 'rk'))
  await cache.bump('g')
  t.equal(cache.getStats().breaker, 'open')
  t.match(lines.find((l) => /breaker open/.test(l.msg ?? '')), { level: 'warn', obj: { cooldown: 100 } })
  faulty.setFault('none')
  await until(() => cache.getStats().breaker === 'closed', 'the probe (the pending bump) to close the breaker')
  await until(() => cache.getStats().pendingBumps === 0, 'the pending bump to land')
  const after = await cache.lookup([key], 'rk')
  t.ok(BigInt(after.versions[1] as string) > BigInt(before.versions[1] as string), 'the bump kept while open landed')
  t.match(lines.find((l) => /breaker closed/.test(l.msg ?? '')), { level: 'info' })
})

t.test('half-open: only the probe reaches the store; a failed probe opens it again for twice as long', async (t) => {
  let now = 0
  const breaker = new Breaker({ failures: 1, cooldown: 100, maxCooldown: 250 }, () => now)
  const changes: string[] = []
  breaker.onChange = (from, to, detail) => void changes.push(`${from}>${to}:${detail.cooldown}`)
  breaker.failed()
  t.equal(breaker.state, 'open')
  t.equal(breaker.admit(), false, 'refused during the cool-down')
  now = 100
  t.equal(breaker.admit(), true, 'the probe')
  t.equal(breaker.state, 'half-open')
  t.equal(breaker.admit(), false, 'everyone else waits for the probe')
  breaker.failed()
  now = 299
  t.equal(breaker.admit(), false, 'the second cool-down is twice as long')
  now = 300
  t.equal(breaker.admit(), true)
  breaker.failed()
  now = 549
  t.equal(breaker.admit(), false, 'capped at maxCooldown')
  now = 550
  t.equal(breaker.admit(), true)
  breaker.succeeded()
  t.equal(breaker.state, 'closed')
  breaker.failed()
  now = 650
  t.equal(breaker.admit(), true, 'a success resets the cool-down to its first length')
  t.same(changes, ['closed>open:100', 'open>half-open:100', 'half-open>open:200', 'open>half-open:200', 'half-open>open:250', 'open>half-open:250', 'half-open>closed:100', 'closed>open:100', 'open>half-open:100'])
})

t.test('a success resets the count: only consecutive faults open the breaker', async (t) => {
  const breaker = new Breaker({ failures: 3 })
  breaker.failed()
  breaker.failed()
  breaker.succeeded()
  breaker.failed()
  breaker.failed()
  t.equal(breaker.state, 'closed')
  breaker.failed()
  t.equal(breaker.state, 'open')
})

t.test('breaker options are checked; `false` turns it off; in-process stores have none', async (t) => {
  t.throws(() => new GenerationalCache({ store: new FaultyStore(new MemoryStore()), breaker: { failures: 0 } }), { code: 'GC_INVALID_OPTION', message: 'option breaker.failures must be a positive integer, got 0' })
  t.throws(() => new GenerationalCache({ store: new FaultyStore(new MemoryStore()), breaker: { cooldown: 500, maxCooldown: 100 } }), { message: /breaker.maxCooldown \(100\) must not be below breaker.cooldown \(500\)/ })
  t.throws(() => new GenerationalCache({ store: new FaultyStore(new MemoryStore()), breaker: { failures: (() => 1) as never } }), { message: /^option breaker\.failures must be a positive integer, got \(\) ?=> ?1$/ })
  t.throws(() => new GenerationalCache({ store: new FaultyStore(new MemoryStore()), breaker: 'on' as never }), { message: 'option breaker must be an object or false, got "on"' })
  const faulty = new FaultyStore(new MemoryStore())
  const off = new GenerationalCache({ store: faulty, logger: silent, breaker: false })
  faulty.setFault('error')
  for (let i = 0; i < 10; i++) await t.rejects(async () => off.lookup([], 'rk'), { message: /test fault/ })
  t.equal(off.getStats().breaker, 'closed')
  faulty.setFault('none')
  await off.close()
  t.equal(new GenerationalCache().getStats().breaker, 'closed')
})

t.test('Redis frozen (SIGSTOP): once the breaker is open, requests stop paying the timeout; caching resumes by itself after SIGCONT', async (t) => {
  const server = await startRedis()
  t.teardown(async () => {
    server.thaw()
    await server.stop()
  })
  const { lines, logger } = recorder()
  const db = { v: 0 }
  const timeout = 300
  const app = await redisApp(t, server.client(), db, { timeout, logger, breaker: { failures: 3, cooldown: 1000, maxCooldown: 2000 } })
  // Warm up (on a loaded machine the first lookups, which wait for the connection, may time out).
  const warm = Date.now() + 10_000
  while (!(await get(app)).cache.includes('hit') && Date.now() < warm) await sleep(50)
  t.match((await get(app)).cache, /hit/, 'warm')
  await until(() => app.groupcache.stats().breaker === 'closed', 'the breaker closed before the freeze')
  server.freeze()
  const whileOpen: number[] = []
  const details = new Set<string>()
  for (let i = 0; i < 60; i++) {
    const start = performance.now()
    const answer = await get(app)
    const ms = performance.now() - start
    t.equal(answer.status, 200)
    t.equal(answer.body, 'v0')
    details.add(answer.cache)
    if (app.groupcache.stats().breaker === 'open' && answer.cache.includes('store-unavailable')) whileOpen.push(ms)
  }
  t.ok(details.has('groupcache; fwd=bypass; detail=store-timeout'), 'the first requests paid the timeout')
  t.ok(details.has('groupcache; fwd=bypass; detail=store-unavailable'), 'then the breaker answered for the store')
  whileOpen.sort((a, b) => a - b)
  const median = whileOpen[Math.floor(whileOpen.length / 2)] as number
  t.ok(whileOpen.length >= 30, `most requests were made with the breaker open (${whileOpen.length})`)
  t.ok(median < timeout / 3, `median latency with the breaker open: ${median.toFixed(2)} ms (timeout ${timeout} ms)`)
  t.equal(lines.filter((l) => /breaker open/.test(l.msg ?? '')).length, 1, 'the breaker opening is logged once')
  server.thaw()
  const end = Date.now() + 15_000
  let answer = await get(app)
  while (!answer.cache.includes('hit') && Date.now() < end) {
    await sleep(50)
    answer = await get(app)
    t.equal(answer.status, 200)
  }
  t.match(answer.cache, /hit/, 'caching resumed with no intervention')
  t.equal(app.groupcache.stats().breaker, 'closed')
})

t.test('150,000 distinct bumps while Redis refuses writes: the pending set stays bounded, and after recovery another instance stops serving the old data within seconds', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.stop())
  const { lines, logger } = recorder()
  const db = { v: 0 }
  const a = await redisApp(t, server.client(), db, { logger })
  const b = await redisApp(t, server.client(), db)
  t.equal((await get(b)).cache, STORED)
  t.match((await get(b)).cache, /hit/)
  t.equal(cli(server.port, 'CONFIG', 'SET', 'min-replicas-to-write', '1'), 'OK', 'Redis refuses writes (NOREPLICAS)')
  db.v++
  let maxPending = 0
  for (let i = 0; i < 150_000; i++) {
    const pending = a.groupcache.bump('user:userId', { userId: String(i) })
    if (i % 1000 === 0) {
      await pending
      maxPending = Math.max(maxPending, a.groupcache.stats().pendingBumps)
    }
  }
  t.ok(maxPending <= 10_000, `pending bumps stayed within the bound (max seen ${maxPending})`)
  t.match(lines.find((l) => /too many pending bumps/.test(l.msg ?? '')), { level: 'warn', obj: { maxPendingBumps: 10_000 } })
  t.equal((await get(b)).body, 'v0', 'B still serves its cached entry: the bump was never acknowledged')
  t.equal(cli(server.port, 'CONFIG', 'SET', 'min-replicas-to-write', '0'), 'OK', 'Redis accepts writes again')
  const recovered = performance.now()
  // The breaker may be in its longest cool-down (10 s) after failing probes during the bumps.
  const end = Date.now() + 30_000
  while ((await get(b)).body !== 'v1' && Date.now() < end) await sleep(50)
  const seconds = (performance.now() - recovered) / 1000
  t.equal((await get(b)).body, 'v1', `B stopped serving the old data ${seconds.toFixed(1)} s after Redis recovered`)
  await until(() => a.groupcache.stats().pendingBumps === 0, 'A’s pending epoch bump to land', 20_000)
  t.notOk(lines.some((l) => /Maximum call stack/.test(String((l.obj as { err?: Error } | undefined)?.err?.message))), 'no RangeError')
  t.match(lines.find((l) => /pending bumps landed/.test(l.msg ?? '')), { level: 'info', obj: { landed: 1 } }, 'one epoch bump landed in place of 150,000')
})
