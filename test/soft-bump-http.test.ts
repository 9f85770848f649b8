import Fastify from 'fastify'
import t from 'tap'
import groupcache, { MemoryStore, type GraceResult } from '../lib/index.js'
import { encodeEntry, makeEntry } from '../lib/http/entry.js'
import type { HttpResult } from './helpers/http.js'
import { gate, matrix } from './helpers/matrix.js'
import { recordChannels } from './helpers/observe.js'

const STORED = 'groupcache; fwd=miss; stored'
// Express's final handler prints the stack of every error it answers, except under NODE_ENV=test.
process.env.NODE_ENV = 'test'
const SOFT = /^groupcache; hit; ttl=-\d+; detail=soft-bump$/
const FOLLOWERS = 20
let mixed = 0

/**
 * Soft bumps (DESIGN §10) on both adapters and both stores: during the grace,
 * requests never wait for the one request that recomputes; the new generation
 * appears after that one recompute; a hard bump after a soft one is never
 * answered with the old generation.
 */
await matrix(t, async (t, { app: makeApp }) => {
  let version = 1
  let runs = 0
  let held: ReturnType<typeof gate> | undefined
  const app = await makeApp([
    {
      method: 'GET',
      path: '/news',
      cache: { group: 'news', ttl: 60 },
      handler: async () => {
        runs++
        const mine = version
        if (held !== undefined) await held.wait
        return { body: `news v${mine}` }
      }
    },
    {
      method: 'PUT',
      path: '/news',
      handler: () => {
        version++
        return { body: 'ok', bumps: [['news', {}, { grace: 30 }]] }
      }
    },
    { method: 'GET', path: '/other', cache: { group: 'other' }, handler: () => ({ body: `other v${version}` }) },
    {
      method: 'PUT',
      path: '/both',
      handler: () => {
        version++
        return { body: 'ok', bumps: [['news', {}, { grace: 30 }], ['other']] }
      }
    }
  ])
  const get = () => app.request('GET', '/news')
  /** Starts the request that will recompute (its handler waits on a gate) and waits until the handler runs. */
  const startRecompute = async (): Promise<{ leader: Promise<HttpResult>; open(): void; answered(): boolean }> => {
    held = gate()
    const opened = held
    const before = runs
    let answered = false
    const leader = get().finally(() => (answered = true))
    while (runs === before) await new Promise((resolve) => setImmediate(resolve))
    return {
      leader,
      answered: () => answered,
      open: () => {
        held = undefined
        opened.open()
      }
    }
  }

  t.equal((await get()).headers['cache-status'], STORED)
  t.equal((await get()).body, 'news v1', 'a hit before any bump')

  // A soft bump through the handler's bumpGroup(…, { grace }).
  t.equal((await app.request('PUT', '/news')).status, 200)
  runs = 0
  const recompute = await startRecompute()
  const during = await Promise.all(Array.from({ length: FOLLOWERS }, get))
  t.notOk(recompute.answered(), 'every other request was answered while the recompute was still held')
  t.same(new Set(during.map((r) => r.body)), new Set(['news v1']), 'during the grace, the previous generation answers')
  for (const r of during) t.match(r.headers['cache-status'], SOFT, 'marked stale by a soft bump')
  t.equal(runs, 1, 'exactly one request recomputes')
  recompute.open()
  const recomputed = await recompute.leader
  t.equal(recomputed.body, 'news v2', 'the recomputing request gets the new generation')
  t.equal(recomputed.headers['cache-status'], STORED)
  const after = await get()
  t.equal(after.body, 'news v2', 'the new generation appears after one recompute')
  t.match(after.headers['cache-status'], /^groupcache; hit; ttl=\d+$/, 'a fresh hit')
  t.equal(runs, 1, 'no further handler run')

  // Soft, then hard before anyone recomputed: the old generation is never served again.
  version++
  await app.api.bump('news', {}, { grace: 30 })
  version++
  await app.api.bump('news')
  runs = 0
  const hard = await startRecompute()
  const waiting = Array.from({ length: 5 }, get)
  await new Promise((resolve) => setTimeout(resolve, 50))
  hard.open()
  const answers = [await hard.leader, ...(await Promise.all(waiting))]
  t.same(new Set(answers.map((r) => r.body)), new Set(['news v4']), 'after a hard bump, only the newest generation is served')
  for (const r of answers) t.notMatch(r.headers['cache-status'], /soft-bump|stale/, 'nothing stale after a hard bump')

  // Another soft bump, then the API's soft bump: the grace applies to the version that bump set only.
  version++
  await app.api.bump('news', {}, { grace: 30 })
  runs = 0
  const again = await startRecompute()
  const soft = await get()
  t.equal(soft.body, 'news v4', 'app.groupcache.bump(…, { grace }) is a soft bump too')
  t.match(soft.headers['cache-status'], SOFT)
  again.open()
  t.equal((await again.leader).body, 'news v5')

  // One response recording a soft and a hard bump: each group gets its own kind.
  t.equal((await app.request('GET', '/other')).body, 'other v5')
  await app.request('PUT', '/both')
  runs = 0
  const both = await startRecompute()
  t.match((await get()).headers['cache-status'], SOFT, 'the soft-bumped group answers stale')
  const other = await app.request('GET', '/other')
  t.equal(other.body, 'other v6', 'the hard-bumped group is never served old')
  t.equal(other.headers['cache-status'], STORED)
  both.open()
  await both.leader

  // A bad grace is an error at the call, naming the option.
  const bad = await makeApp([{ method: 'PUT', path: '/x', handler: () => ({ body: 'ok', bumps: [['news', {}, { grace: -1 }]] }) }])
  t.equal((await bad.request('PUT', '/x')).status, 500, 'the handler that passed it fails')
  await t.rejects(bad.api.bump('news', {}, { grace: Number.NaN }), { code: 'GC_INVALID_OPTION', message: /option grace/ })

  // A response recording hard and soft bumps: hard ones in one store call, soft ones in one call per grace, none lost.
  const p = `mixed${process.pid}x${++mixed}`
  const seen = recordChannels(t, p)
  const mixedApp = await makeApp(
    [
      {
        method: 'PUT',
        path: '/many',
        handler: () => ({
          body: 'ok',
          bumps: [['a'], ['c', {}, { grace: 30 }], ['b'], ['d', {}, { grace: 30 }], ['e', {}, { grace: 60 }], ['f', {}, { grace: 30 }]]
        })
      }
    ],
    { prefix: p }
  )
  t.equal((await mixedApp.request('PUT', '/many')).status, 200)
  t.same(
    seen.bumps.map((b) => ({ groups: [...b.groups].sort(), soft: b.soft })).sort((x, y) => x.groups.join().localeCompare(y.groups.join())),
    [
      { groups: ['a', 'b'], soft: false },
      { groups: ['c', 'd', 'f'], soft: true },
      { groups: ['e'], soft: true }
    ]
  )
})


t.test('a grace read that fails, or finds nothing usable, makes followers wait for the recompute', async (t) => {
  type Mode = 'throw' | 'garbage' | 'expired'
  class GraceStore extends MemoryStore {
    mode: Mode = 'throw'
    override lookupGrace(...args: Parameters<MemoryStore['lookupGrace']>): GraceResult | undefined {
      const found = super.lookupGrace(...args)
      if (this.mode === 'throw') throw new Error('grace read failed (test)')
      if (found === undefined) return undefined
      // An unreadable entry, or one that had expired before the soft bump.
      const entry = this.mode === 'garbage' ? Buffer.from('not an entry') : encodeEntry(makeEntry(200, {}, Buffer.from('ancient'), found.bumpedAt - 10_000, 1000))
      return { ...found, entry }
    }
  }
  const store = new GraceStore()
  const app = Fastify()
  const p = `grace${process.pid}`
  const seen = recordChannels(t, p)
  await app.register(groupcache, { store, prefix: p })
  let version = 0
  let held = gate()
  app.get('/page', { config: { cache: { group: 'page' } } }, async () => {
    const mine = ++version
    await held.wait
    return `page v${mine}`
  })
  t.teardown(() => app.close())
  held.open()
  await app.inject('/page')
  for (const mode of ['throw', 'garbage', 'expired'] as const) {
    store.mode = mode
    await app.groupcache.bump('page', {}, { grace: 30 })
    held = gate()
    const before = version
    const leader = app.inject('/page')
    while (version === before) await new Promise((resolve) => setImmediate(resolve))
    const follower = app.inject('/page')
    await new Promise((resolve) => setTimeout(resolve, 20))
    held.open()
    const [led, followed] = await Promise.all([leader, follower])
    t.equal(followed.body, led.body, `${mode}: the follower got the recomputed response`)
    t.equal(followed.headers['cache-status'], 'groupcache; fwd=miss; collapsed')
  }
  t.equal(app.groupcache.cache.getStats().errors, 1, 'the failed read is counted (and logged through the request logger)')
  t.match(seen.faults, [{ what: 'grace', route: 'GET /page', error: { message: 'grace read failed (test)' } }], 'and published, saying what failed and where')
  t.equal(seen.faults.length, 1)
})

t.test('a soft bump recorded after the response was sent is applied at once', async (t) => {
  const app = Fastify()
  await app.register(groupcache)
  const events: string[][] = []
  app.groupcache.cache.onBump((event) => {
    events.push([...event.groups])
  })
  let late!: Promise<void>
  app.put('/late', async (_request, reply) => {
    await reply.send('ok')
    late = new Promise((resolve) => setImmediate(resolve))
    reply.bumpGroup('late', {}, { grace: 5 })
    return reply
  })
  t.teardown(() => app.close())
  t.equal((await app.inject({ method: 'PUT', url: '/late' })).body, 'ok')
  await late
  while (events.length === 0) await new Promise((resolve) => setImmediate(resolve))
  t.same(events, [['late']])
})

t.test('without staleIfError, a recompute that fails during a soft bump answers its failure (the grace serves only identical requests)', async (t) => {
  const app = Fastify()
  await app.register(groupcache)
  let fail = false
  app.get('/page', { config: { cache: { group: 'page' } } }, async (_request, reply) => {
    if (fail) return reply.code(500).send('origin down (test)')
    return 'page v1'
  })
  t.teardown(() => app.close())
  t.equal((await app.inject('/page')).body, 'page v1')
  await app.groupcache.bump('page', {}, { grace: 30 })
  fail = true
  const failed = await app.inject('/page')
  t.equal(failed.statusCode, 500, 'the failure, not the previous generation')
  t.equal(failed.body, 'origin down (test)')
})
