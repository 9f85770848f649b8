import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import express, { type NextFunction, type Request, type Response } from 'express'
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import groupcache, { MemoryStore } from '../lib/index.js'
import { expressCache } from '../lib/express.js'
import { listenExpress } from './helpers/express-stack.js'
import type { HttpResult } from './helpers/http.js'
import { gate, matrix } from './helpers/matrix.js'

const STORED = 'groupcache; fwd=miss; stored'
const TIMED_OUT = /^groupcache; fwd=stale; ttl=-\d+; detail=handler-timeout$/
// Express's final handler prints the stack of every error it answers, except under NODE_ENV=test.
process.env.NODE_ENV = 'test'
/** The real setImmediate, taken before the mocked clock replaces it: yielding with it lets socket I/O through. */
const realImmediate = setImmediate
const tick = () => new Promise((resolve) => realImmediate(resolve))
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * staleIfErrorTimeout (issue 13) on both adapters and both stores, under the
 * mocked clock: a handler that has not answered within the limit, while a
 * stale entry could answer, is answered with it — the request, the identical
 * requests waiting on it, and those arriving while it still runs. What it
 * answers later is dropped (not stored). Without a stale entry, or past the
 * window, or on a route without a limit, the handler runs as long as it takes.
 */
await matrix(t, async (t, { app: makeApp }) => {
  let version = 0
  let runs = 0
  let finished = 0
  let held: ReturnType<typeof gate> | undefined
  const handler = async () => {
    runs++
    const mine = ++version
    const wait = held
    if (wait !== undefined) await wait.wait
    finished++
    return { body: `feed v${mine}`, headers: { 'content-type': 'text/plain', 'x-origin': 'feed' } }
  }
  const app = await makeApp(
    [
      { method: 'GET', path: '/feed', cache: { group: 'feed', ttl: 10 }, handler },
      { method: 'GET', path: '/patient', cache: { group: 'feed', ttl: 10, staleIfErrorTimeout: 0 }, handler },
      { method: 'GET', path: '/cold', cache: { group: 'cold', ttl: 10 }, handler }
    ],
    // A store timeout far above what the mocked clock reaches.
    { staleIfError: 60, staleIfErrorTimeout: 0.5, timeout: 600_000 }
  )
  t.clock.enter()
  /** Moves the mocked clock a millisecond at a time until every request has its answer, for at most `ms`; undefined for those still waiting. */
  const drive = async (requests: Promise<HttpResult>[], ms = 5000): Promise<(HttpResult | undefined)[]> => {
    const results: (HttpResult | undefined)[] = requests.map(() => undefined)
    let open = requests.length
    requests.forEach((r, i) => void r.then((res) => ((results[i] = res), open--)))
    for (let i = 0; i < ms && open > 0; i++) {
      t.clock.advance(1)
      await tick()
    }
    for (let i = 0; i < 20 && open > 0; i++) await tick()
    return results
  }
  const get = async (path: string): Promise<HttpResult> => (await drive([app.request('GET', path)]))[0] as HttpResult
  /** Starts a request whose handler is held, and returns once that handler runs. */
  const slow = async (path: string) => {
    held = gate()
    const opened = held
    const before = runs
    const leader = app.request('GET', path)
    for (let i = 0; runs === before; i++) {
      if (i > 5000) throw new Error('the handler never started')
      await tick()
    }
    return {
      leader,
      open: async () => {
        held = undefined
        const done = finished
        opened.open()
        while (finished === done) await tick()
        for (let i = 0; i < 20; i++) await tick()
      }
    }
  }

  t.equal((await get('/feed')).headers['cache-status'], STORED)
  t.equal((await get('/patient')).headers['cache-status'], STORED)
  t.clock.advance(15_000)

  // Expired 5 s ago, within staleIfError: the handler is held past the limit.
  const first = await slow('/feed')
  for (let i = 0; i < 50; i++) await tick()
  const followers = Array.from({ length: 3 }, () => app.request('GET', '/feed'))
  for (let i = 0; i < 50; i++) await tick()
  const answers = await drive([first.leader, ...followers])
  for (const answer of answers) {
    t.equal(answer?.status, 200, 'answered once the limit passed, the handler still running')
    t.equal(answer?.body, 'feed v1', 'with the stale entry')
    t.match(answer?.headers['cache-status'], TIMED_OUT, 'marked: stale because the handler timed out')
    t.equal(answer?.headers['x-origin'], 'feed', "the stored response's headers")
    t.ok(Number(answer?.headers.age) >= 15, 'Age counts from when it was stored')
  }
  // Runs so far: /feed v1, /patient v2, and this one (v3).
  t.equal(runs, 3, 'the three identical requests waited on the one handler, and were released with it')
  t.equal(finished, 2, 'that handler is still running')

  // Answered while the handler is still held: it did not wait for it (nor, the run count says, run its own).
  const during = await drive([app.request('GET', '/feed')])
  t.match(during[0]?.headers['cache-status'], TIMED_OUT, 'a request arriving while it still runs gets the stale entry')
  t.equal(runs, 3, 'without running the handler again')
  t.equal(finished, 2, 'and without waiting for it')

  await first.open()
  const next = await get('/feed')
  t.equal(next.headers['cache-status'], STORED, 'once the slow handler answered, the next request runs the handler again')
  t.equal(next.body, 'feed v4', 'its late answer (v3) was dropped, never stored')
  t.equal(runs, 4)

  // A handler that answers within the limit: its own response, and the timer is gone.
  t.clock.advance(15_000)
  const timely = await slow('/feed')
  const limitAt = t.clock.now() + 500
  const timers = () => (t.clock.timers.get(limitAt) ?? []) as unknown as { reffed: boolean }[]
  t.equal(timers().length, 1, 'one time limit while the handler runs')
  t.equal(timers()[0]?.reffed, true, 'which holds the process while a request waits on it (inject has no socket to do so)')
  for (let i = 0; i < 100; i++) {
    t.clock.advance(1)
    await tick()
  }
  await timely.open()
  const [answered] = await drive([timely.leader])
  t.equal(answered?.body, 'feed v5')
  t.equal(answered?.headers['cache-status'], STORED, 'the handler answered in time: its response, stored')
  t.equal(timers().length, 0, 'the timer was cleared when the handler answered')

  // No stale entry: the handler takes as long as it takes.
  const cold = await slow('/cold')
  const [waited] = await drive([cold.leader], 2000)
  t.equal(waited, undefined, 'no stale entry: still waiting 2 s later (4 times the limit)')
  await cold.open()
  const [coldAnswer] = await drive([cold.leader])
  t.equal(coldAnswer?.headers['cache-status'], STORED)

  // A route that turns the limit off waits for its handler, stale entry or not.
  const patient = await slow('/patient')
  t.equal((await drive([patient.leader], 2000))[0], undefined, 'staleIfErrorTimeout: 0 on the route: the request waits')
  await patient.open()
  t.equal((await drive([patient.leader]))[0]?.headers['cache-status'], STORED)

  // After a soft bump, the previous generation answers a handler past its limit.
  await app.api.bump('feed', {}, { grace: 30 })
  const soft = await slow('/feed')
  const [softAnswer] = await drive([soft.leader])
  t.equal(softAnswer?.body, 'feed v5', 'the soft-bumped entry answers')
  t.match(softAnswer?.headers['cache-status'], TIMED_OUT)
  // While the slow handler still runs, a new request takes the timed-out flight's stale answer (not the soft bump's own).
  const [arriving] = await drive([app.request('GET', '/feed')])
  t.equal(arriving?.body, 'feed v5')
  t.match(arriving?.headers['cache-status'], TIMED_OUT, 'a request arriving while the handler still runs: the same stale answer')
  await soft.open()

  // Past the window (and the grace): the handler is waited for.
  t.clock.advance(120_000)
  const late = await slow('/feed')
  t.equal((await drive([late.leader], 2000))[0], undefined, 'past staleIfError, the request waits for its handler')
  await late.open()
  t.equal((await drive([late.leader]))[0]?.headers['cache-status'], STORED)
})

/** A request answered at the limit: the previous generation, a header set before the handler kept, the handler's own left out. */
function checkTimedOutAnswer(t: Test, label: string, status: number, body: string, headers: Record<string, unknown>, previous: string): void {
  t.equal(status, 200, `${label}: answered at the limit`)
  t.equal(body, previous, 'with the previous generation')
  t.match(headers['cache-status'], TIMED_OUT)
  t.equal(headers['x-preset'], 'kept', 'a header set before the handler is kept')
  t.equal(headers['x-handler'], undefined, 'a header the handler set is not part of the stale answer')
}

/** Waits (real time) until the late handler has finished, then a little more for what it sends to be dropped. */
async function until(done: () => boolean): Promise<void> {
  while (!done()) await sleep(1)
  await sleep(20)
}

/** Captures Fastify's log lines (JSON) at warn and above. */
function logLines(): { stream: { write(line: string): void }; lines: { level: number; msg: string }[] } {
  const lines: { level: number; msg: string }[] = []
  return { lines, stream: { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) } }
}

t.test('Fastify: whatever the handler does after the stale answer is dropped, with no warning or error', async (t) => {
  const { stream, lines } = logLines()
  const app = Fastify({ logger: { level: 'warn', stream } })
  await app.register(groupcache, { staleIfError: 60, staleIfErrorTimeout: 0.05 })
  app.addHook('onRequest', async (_request, reply) => {
    reply.header('x-preset', 'kept')
  })
  let mode: 'fast' | 'send' | 'return' | 'throw' | 'raw' = 'fast'
  let held = gate()
  let settled = 0
  const callbacks: string[] = []
  app.get('/a', { config: { cache: { group: 'a' } } }, async (_request, reply) => {
    try {
      if (mode === 'fast') return 'a v1'
      reply.header('x-handler', 'set before the limit')
      await held.wait
      if (mode === 'throw') throw new Error('origin down, late (test)')
      if (mode === 'raw') {
        // Straight to the Node response, as a hijacking handler would.
        reply.raw.writeHead(200, { 'x-raw': 'late' })
        reply.raw.write('la', () => callbacks.push('write'))
        reply.raw.end('te', () => callbacks.push('end'))
        return undefined
      }
      return mode === 'send' ? reply.send('late') : 'late'
    } finally {
      settled++
    }
  })
  // Callback style: the handler returns nothing and sends later.
  app.get('/cb', { config: { cache: { group: 'a' } } }, (_request, reply) => {
    if (mode === 'fast') return reply.send('cb v1')
    void held.wait.then(() => {
      reply.header('x-late', 'yes').send('late')
      settled++
    })
  })
  t.teardown(() => app.close())

  for (const [path, late] of [['/a', 'send'], ['/a', 'return'], ['/a', 'throw'], ['/a', 'raw'], ['/cb', 'send']] as const) {
    mode = 'fast'
    t.equal((await app.inject(path)).body, path === '/a' ? 'a v1' : 'cb v1')
    await app.groupcache.bump('a', {}, { grace: 30 })
    mode = late
    held = gate()
    const before = settled
    const stale = await app.inject(path)
    checkTimedOutAnswer(t, `${path} ${late}`, stale.statusCode, stale.body, stale.headers, path === '/a' ? 'a v1' : 'cb v1')
    held.open()
    await until(() => settled !== before)
    mode = 'fast'
    const next = await app.inject(path)
    t.equal(next.headers['cache-status'], STORED, 'the late answer was not stored: the next request runs the handler')
  }
  const warnings = lines.filter((line) => line.level === 40)
  t.same(
    warnings.map((line) => line.msg),
    ['groupcache: a handler failed after a stale entry had answered in its place (staleIfErrorTimeout)'],
    'one warning, for the handler that threw late; no "Reply was already sent"'
  )
  t.same(lines.filter((line) => line.level >= 50), [], 'nothing logged as an error')
  t.same(callbacks.sort(), ['end', 'write'], "a dropped write's callbacks still run")
})

t.test('Fastify: a response still in its onSend hooks at the limit is dropped; a handler failing in time goes through stale-if-error', async (t) => {
  const { stream, lines } = logLines()
  const app = Fastify({ logger: { level: 'warn', stream } })
  await app.register(groupcache, { staleIfError: 60, staleIfErrorTimeout: 0.05 })
  let version = 0
  let slowHook = false
  let fail = false
  let sent = 0
  app.get(
    '/h',
    {
      config: { cache: { group: 'h' } },
      onSend: async (_request, _reply, payload) => {
        if (slowHook) await sleep(150)
        sent++
        return payload
      }
    },
    async (_request, reply) => {
      if (fail) throw new Error('origin down (test)')
      return reply.header('content-type', 'text/plain').send(`h v${++version}!`)
    }
  )
  t.teardown(() => app.close())
  t.equal((await app.inject('/h')).body, 'h v1!')
  await app.groupcache.bump('h', {}, { grace: 30 })
  slowHook = true
  const before = sent
  const stale = await app.inject('/h')
  t.match(stale.headers['cache-status'], TIMED_OUT, 'the handler answered in time, but its hooks did not')
  t.equal(stale.body, 'h v1!')
  while (sent === before) await sleep(5)
  await sleep(20)
  slowHook = false
  fail = true
  const failed = await app.inject('/h')
  t.match(failed.headers['cache-status'], /^groupcache; fwd=stale; fwd-status=500; ttl=-\d+; detail=stale-if-error$/, 'a failure within the limit: stale-if-error, as without one')
  t.same(lines.filter((line) => line.level === 40 || line.msg.includes('already sent')), [], 'no warning')
})

t.test('a request that gave up waiting on an identical one runs its own handler, under its own limit', async (t) => {
  const app = Fastify()
  await app.register(groupcache, { staleIfError: 60, staleIfErrorTimeout: 0.1, coalesceTimeout: 20 })
  let runs = 0
  let held: ReturnType<typeof gate> | undefined
  app.get('/f', { config: { cache: { group: 'f', ttl: 0.05 } } }, async () => {
    runs++
    if (held !== undefined) await held.wait
    return 'f v1'
  })
  t.teardown(() => app.close())
  await app.inject('/f')
  await sleep(100)
  held = gate()
  const leader = app.inject('/f')
  while (runs < 2) await sleep(1)
  const follower = await app.inject('/f')
  t.equal(runs, 3, 'the follower stopped waiting after coalesceTimeout and ran its own handler')
  t.match(follower.headers['cache-status'], TIMED_OUT, 'which the stale entry answered at its own limit')
  t.match((await leader).headers['cache-status'], TIMED_OUT)
  held.open()
})

t.test("Fastify with lookupAt 'onRequest': the time limit applies the same", async (t) => {
  const app = Fastify()
  await app.register(groupcache, { staleIfError: 60, staleIfErrorTimeout: 0.05, lookupAt: 'onRequest' })
  let held: ReturnType<typeof gate> | undefined
  app.get('/b', { config: { cache: { group: 'b' } } }, async () => {
    if (held !== undefined) await held.wait
    return 'b'
  })
  t.teardown(() => app.close())
  t.equal((await app.inject('/b')).headers['cache-status'], STORED)
  await app.groupcache.bump('b', {}, { grace: 30 })
  held = gate()
  const stale = await app.inject('/b')
  t.match(stale.headers['cache-status'], TIMED_OUT)
  held.open()
  // A synchronous handler is never timed (a value is its answer).
  const sync = Fastify()
  await sync.register(groupcache, { staleIfError: 60, staleIfErrorTimeout: 0.05 })
  sync.get('/s', { config: { cache: true } }, () => 's')
  t.teardown(() => sync.close())
  t.equal((await sync.inject('/s')).body, 's')
})

t.test('Express: the late response is dropped; res.send, res.json, headers and cookies neither throw nor reach the error handler', async (t) => {
  const gc = expressCache({ staleIfError: 60, staleIfErrorTimeout: 0.05 })
  const app = express()
  const errors: unknown[] = []
  let mode: 'fast' | 'send' | 'json' | 'write' = 'fast'
  let held = gate()
  let settled = 0
  const callbacks: string[] = []
  app.use((_req, res, next) => {
    res.setHeader('x-preset', 'kept')
    next()
  })
  app.use(gc.middleware())
  app.get('/e', gc.route({ group: 'e' }), async (_req: Request, res: Response) => {
    if (mode === 'fast') {
      res.send('e v1')
      return
    }
    res.setHeader('x-handler', 'set before the limit')
    await held.wait
    try {
      res.status(200).set('x-late', 'yes').cookie('late', '1')
      if (mode === 'send') res.send('late')
      else if (mode === 'json') res.json({ late: true })
      else {
        res.removeHeader('x-handler')
        res.appendHeader('x-more', 'yes')
        res.writeHead(200, { 'x-head': 'late' })
        res.write('la', () => callbacks.push('write'))
        res.end('te', () => callbacks.push('end'))
      }
    } catch (err) {
      errors.push(err)
    }
    settled++
  })
  app.use((err: unknown, _req: Request, _res: Response, next: NextFunction) => {
    errors.push(err)
    next(err)
  })
  const get = await listenExpress(t, app, gc)
  for (const late of ['send', 'json', 'write'] as const) {
    mode = 'fast'
    t.equal((await get('GET', '/e')).body, 'e v1')
    await gc.bump('e', {}, { grace: 30 })
    mode = late
    held = gate()
    const before = settled
    const stale = await get('GET', '/e')
    checkTimedOutAnswer(t, late, stale.status, stale.body, stale.headers, 'e v1')
    held.open()
    await until(() => settled !== before)
    mode = 'fast'
    t.equal((await get('GET', '/e')).headers['cache-status'], STORED, 'the late answer was not stored: the next request runs the handler')
  }
  t.same(errors, [], 'no ERR_HTTP_HEADERS_SENT, nothing passed to the error handler')
  t.same(callbacks.sort(), ['end', 'write'], "a dropped write's callbacks still run")
})

t.test('staleIfErrorTimeout is checked at registration, on the route and the plugin', async (t) => {
  const app = Fastify()
  await app.register(groupcache, { staleIfError: 60 })
  t.throws(() => app.get('/x', { config: { cache: { staleIfErrorTimeout: -1 } } }, async () => 'x'), {
    code: 'GC_INVALID_OPTION',
    message: 'groupcache: route GET /x: option staleIfErrorTimeout must be a number of seconds (0 or more), got -1'
  })
  t.throws(() => app.get('/y', { config: { cache: { staleIfErrorTimeout: 3_000_000 } } }, async () => 'y'), {
    code: 'GC_INVALID_OPTION',
    message: /^groupcache: route GET \/y: option staleIfErrorTimeout must be at most 2147483\.647 seconds/
  })
  t.doesNotThrow(() => app.get('/z', { config: { cache: { staleIfErrorTimeout: 0.25 } } }, async () => 'z'), 'fractions of a second')
  await app.close()
  const bad = Fastify()
  await t.rejects(async () => {
    await bad.register(groupcache, { staleIfErrorTimeout: '1' as unknown as number })
  }, { code: 'GC_INVALID_OPTION', message: /^groupcache: option staleIfErrorTimeout must be a number of seconds/ })
  t.throws(() => expressCache({ staleIfErrorTimeout: Number.POSITIVE_INFINITY }), { code: 'GC_INVALID_OPTION', message: /option staleIfErrorTimeout/ })
  t.throws(() => expressCache().route({ staleIfErrorTimeout: Number.NaN }), { code: 'GC_INVALID_OPTION', message: /route Express route: option staleIfErrorTimeout/ })
})

t.test('without staleIfError the time limit is inert: the request waits for its handler', async (t) => {
  const app = Fastify()
  await app.register(groupcache, { staleIfErrorTimeout: 0.02 })
  let held: ReturnType<typeof gate> | undefined
  app.get('/w', { config: { cache: { group: 'w' } } }, async () => {
    if (held !== undefined) await held.wait
    return held === undefined ? 'w v1' : 'w v2'
  })
  t.teardown(() => app.close())
  await app.inject('/w')
  await app.groupcache.bump('w', {}, { grace: 30 })
  held = gate()
  const waiting = app.inject('/w')
  await sleep(100)
  held.open()
  const answer = await waiting
  t.equal(answer.body, 'w v2', "the handler's own answer, 5 limits later")
  t.equal(answer.headers['cache-status'], STORED)
})

t.test('the time limit answers even when nothing else keeps the process alive (inject, no server, no Redis client)', async (t) => {
  // Regression: the limit's timer was unref'd, so such a process exited with the request unanswered.
  const child = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(new URL('./helpers/stale-timeout-child.ts', import.meta.url))], {
    encoding: 'utf8',
    timeout: 20_000
  })
  t.equal(child.status, 0, child.stderr)
  const report = JSON.parse(child.stdout.trim().split('\n').pop() ?? 'null') as { body: string; cacheStatus: string } | null
  t.equal(report?.body, 'a v1', 'answered with the previous generation')
  t.match(report?.cacheStatus, TIMED_OUT)
})

t.test('Express: a handler that began answering within the limit is not replaced while its bumps are applied', async (t) => {
  /** A store whose bumps take longer than the time limit. */
  class SlowBumps extends MemoryStore {
    slow = false
    override async bump(...args: Parameters<MemoryStore['bump']>): Promise<void> {
      if (this.slow) await sleep(200)
      return super.bump(...args)
    }
  }
  const store = new SlowBumps()
  const gc = expressCache({ store, staleIfError: 60, staleIfErrorTimeout: 0.05 })
  const app = express()
  app.use(gc.middleware())
  let version = 0
  app.get('/v', gc.route({ group: 'v' }), (_req: Request, res: Response) => {
    version++
    // A cached page that counts its views: the bump is applied before the response goes out.
    if (version > 1) res.bumpGroup('views')
    res.send(`v${version}`)
  })
  const get = await listenExpress(t, app, gc)
  t.equal((await get('GET', '/v')).body, 'v1')
  await gc.bump('v', {}, { grace: 30 })
  store.slow = true
  const answered = await get('GET', '/v')
  t.equal(answered.body, 'v2', "the handler's own response: it answered in time, only its bump was slow")
  t.equal(answered.headers['cache-status'], STORED)
})
