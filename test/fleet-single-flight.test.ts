import { spawn, type ChildProcess } from 'node:child_process'
import { request } from 'node:http'
import { join } from 'node:path'
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify'
import type { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { groupcache, RedisStore } from '../lib/index.js'
import { startRedis } from './helpers/redis.js'

/**
 * Fleet-wide single flight with real processes (DESIGN §10, issue 13): three
 * `node` processes each run a Fastify app with the plugin on one private
 * Redis (test/helpers/fleet-app.ts); every handler run is counted in Redis.
 */
const server = await startRedis()
const redis = server.client()
const APP = join(import.meta.dirname, 'helpers', 'fleet-app.ts')
const apps = new Set<ChildProcess>()
t.teardown(async () => {
  await Promise.all([...apps].map(stop))
  redis.disconnect()
  await server.stop()
})

interface App {
  readonly proc: ChildProcess
  readonly url: string
  /** Handler runs this process printed so far. */
  runs(): number
}

/** Starts one app process and waits until it listens. */
async function startApp(prefix: string, handlerMs: number, leaseMs: number, waitMs: number): Promise<App> {
  const proc = spawn(process.execPath, [...process.execArgv, APP, String(server.port), prefix, String(handlerMs), String(leaseMs), String(waitMs)], {
    stdio: ['pipe', 'pipe', 'inherit']
  })
  apps.add(proc)
  proc.once('exit', () => apps.delete(proc))
  let out = ''
  const port = await new Promise<number>((resolve, reject) => {
    proc.stdout?.setEncoding('utf8')
    proc.stdout?.on('data', (chunk: string) => {
      out += chunk
      const listening = /listening (\d+)/.exec(out)
      if (listening !== null) resolve(Number(listening[1]))
    })
    proc.once('exit', (code) => reject(new Error(`fleet app exited (${String(code)}) before listening: ${out}`)))
  })
  return { proc, url: `http://127.0.0.1:${port}`, runs: () => out.split('\n').filter((line) => line.startsWith('run ')).length }
}

/** SIGTERM (the app closes, so its coverage is written); SIGKILL if it hangs. */
async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return
  const exited = new Promise((resolve) => proc.once('exit', resolve))
  proc.kill('SIGTERM')
  const timer = setTimeout(() => proc.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}

interface Answer {
  readonly status: number
  readonly cacheStatus: string
  readonly by: number | undefined
}

/** Each process listens on its own port; behind a load balancer they all see one Host (part of the cache key). */
function get(url: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { host: 'reports.example' } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (text += chunk))
      res.on('end', () => {
        const by = res.statusCode === 200 ? (JSON.parse(text) as { by: number }).by : undefined
        resolve({ status: res.statusCode ?? 0, cacheStatus: String(res.headers['cache-status'] ?? ''), by })
      })
    })
    req.on('error', reject)
    req.end()
  })
}

const runsIn = async (prefix: string): Promise<number> => Number((await redis.get(`${prefix}:runs`)) ?? 0)

interface FeedAnswer {
  readonly status: number
  readonly cacheStatus: string
  /** The feed handler run that made the body. */
  readonly run: number | undefined
}

/** A request to an app process, answered with the run number of the body (fleet-app.ts `/feed/:id`). */
function send(method: string, url: string): Promise<FeedAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: { host: 'reports.example' } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (text += chunk))
      res.on('end', () => {
        const run = res.statusCode === 200 ? (JSON.parse(text) as { run?: number }).run : undefined
        resolve({ status: res.statusCode ?? 0, cacheStatus: String(res.headers['cache-status'] ?? ''), run })
      })
    })
    req.on('error', reject)
    req.end()
  })
}

const feedRuns = async (prefix: string): Promise<number> => Number((await redis.get(`${prefix}:feed-runs`)) ?? 0)
const SOFT = /^groupcache; hit; ttl=-\d+; detail=soft-bump$/

/** Waits until `count` of the requests have their answer (or fails after `ms`), and returns those answers. */
async function answered<T>(requests: Promise<T>[], count: number, ms = 20_000): Promise<T[]> {
  const got: T[] = []
  for (const r of requests) void r.then((x) => got.push(x))
  const deadline = Date.now() + ms
  while (got.length < count) {
    if (Date.now() > deadline) throw new Error(`only ${got.length} of ${count} requests answered within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return [...got]
}

t.test('a soft bump of a hot entry across three processes: every request but the recompute is answered stale at once; one run; then the new generation', async (t) => {
  const prefix = 'fleet3'
  const fleet = await Promise.all([0, 1, 2].map(() => startApp(prefix, 0, 10_000, 20_000)))
  t.teardown(() => Promise.all(fleet.map((app) => stop(app.proc))))
  const url = (app: App) => `${app.url}/feed/1`
  t.equal((await send('GET', url(fleet[0] as App))).cacheStatus, 'groupcache; fwd=miss; stored')
  t.same((await Promise.all(fleet.map((app) => send('GET', url(app))))).map((a) => a.run), [1, 1, 1], 'hot: a hit everywhere')

  // From now on a recompute waits at the gate until the test opens it.
  await redis.set(`${prefix}:hold`, '1')
  t.equal((await send('PUT', `${(fleet[1] as App).url}/feed?grace=30`)).status, 200, 'soft bump, grace 30 s')
  const requests = fleet.flatMap((app) => Array.from({ length: 20 }, () => send('GET', url(app))))
  // Had any request waited for the recompute (a lease wait included), fewer than 59 would answer while it is held.
  const early = await answered(requests, 59)
  t.equal(await feedRuns(prefix), 2, 'one recompute in the whole fleet, held at the gate')
  t.same(early.filter((a) => a.status !== 200 || a.run !== 1), [], 'the 59 others: the previous generation')
  t.same(early.filter((a) => !SOFT.test(a.cacheStatus)), [], 'each marked stale by the soft bump')

  await redis.del(`${prefix}:hold`)
  await redis.lpush(`${prefix}:gate`, 'open')
  const all = await Promise.all(requests)
  const recomputed = all.find((a) => !SOFT.test(a.cacheStatus))
  t.same(recomputed, { status: 200, cacheStatus: 'groupcache; fwd=miss; stored', run: 2 }, 'the recompute stored the new generation')
  const after = await Promise.all(fleet.map((app) => send('GET', url(app))))
  t.same(after.map((a) => a.run), [2, 2, 2], 'then every process serves the new generation')
  t.ok(after.every((a) => /^groupcache; hit; ttl=\d+$/.test(a.cacheStatus)), 'fresh hits')
  t.equal(await feedRuns(prefix), 2, 'after one recompute')

  // Soft, then hard: the old generation is never served again, anywhere.
  await redis.set(`${prefix}:hold`, '1')
  await send('PUT', `${(fleet[0] as App).url}/feed?grace=30`)
  await send('PUT', `${(fleet[2] as App).url}/feed`)
  const hard = fleet.flatMap((app) => Array.from({ length: 10 }, () => send('GET', url(app))))
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(await feedRuns(prefix), 3, 'one recompute, held')
  await redis.del(`${prefix}:hold`)
  await redis.lpush(`${prefix}:gate`, 'open')
  const fresh = await Promise.all(hard)
  t.same(new Set(fresh.map((a) => a.run)), new Set([3]), 'after the hard bump, every answer is the new generation')
  t.same(fresh.filter((a) => /soft-bump|stale/.test(a.cacheStatus)), [], 'nothing stale')
  t.equal(await feedRuns(prefix), 3)
})

t.test('three processes, 50 concurrent cold requests each for one URL: the handler runs once', async (t) => {
  const prefix = 'fleet1'
  // A lease far longer than the handler: no expiry can let a second run in.
  const fleet = await Promise.all([0, 1, 2].map(() => startApp(prefix, 1000, 10_000, 20_000)))
  const answers = await Promise.all(fleet.flatMap((app) => Array.from({ length: 50 }, () => get(`${app.url}/report/7`))))
  t.equal(answers.length, 150)
  t.same(answers.filter((a) => a.status !== 200), [], 'every request answered 200')
  t.equal(await runsIn(prefix), 1, 'one handler run in the whole fleet (INCR count)')
  t.same(fleet.map((app) => app.runs()).sort(), [0, 0, 1], 'and one process printed it')
  t.equal(new Set(answers.map((a) => a.by)).size, 1, 'every answer is that one run')
  const statuses = answers.map((a) => a.cacheStatus)
  t.equal(statuses.filter((s) => s === 'groupcache; fwd=miss; stored').length, 1, 'one stored miss')
  t.equal(statuses.filter((s) => s === 'groupcache; fwd=miss; collapsed').length, 149, 'the 149 others collapsed onto it, across processes')

  // The entry is there for everyone now.
  const later = await Promise.all(fleet.map((app) => get(`${app.url}/report/7`)))
  t.ok(later.every((a) => a.cacheStatus.startsWith('groupcache; hit')), 'later requests hit')
  t.equal(await runsIn(prefix), 1)
  await Promise.all(fleet.map((app) => stop(app.proc)))
})

t.test('a leader killed with SIGKILL mid-handler: the others answer within leaseMs + handler time, no 5xx', async (t) => {
  const prefix = 'fleet2'
  const leaseMs = 1500
  const handlerMs = 800
  const fleet = await Promise.all([0, 1, 2].map(() => startApp(prefix, handlerMs, leaseMs, 20_000)))
  const started = Date.now()
  const answers = fleet.map((app) => Array.from({ length: 10 }, () => get(`${app.url}/report/9`).catch((err: unknown) => err)))
  // Whichever process runs the handler first is killed while its handler sleeps.
  let leader: App | undefined
  while (leader === undefined) {
    await new Promise((resolve) => setTimeout(resolve, 10))
    leader = fleet.find((app) => app.runs() > 0)
    if (Date.now() - started > 10_000) throw new Error('no process ran the handler')
  }
  leader.proc.kill('SIGKILL')
  const survivors = fleet.filter((app) => app !== leader)
  const served = await Promise.all(survivors.flatMap((app) => answers[fleet.indexOf(app)] as Promise<Answer>[]))
  const took = Date.now() - started
  t.same(served.filter((a) => a.status !== 200), [], 'every request to a surviving process answered 200')
  t.ok(took < leaseMs + 2 * handlerMs + 3000, `answered in ${took} ms: about leaseMs (${leaseMs}) + one handler run (${handlerMs}), not waitMs (20000)`)
  t.equal(await runsIn(prefix), 2, 'the killed run and exactly one take-over')
  t.equal(new Set(served.map((a) => a.by)).size, 1, 'every survivor answer is the take-over run')
  t.equal(served.filter((a) => a.cacheStatus === 'groupcache; fwd=miss; stored').length, 1)
  t.equal(served.filter((a) => a.cacheStatus === 'groupcache; fwd=miss; collapsed').length, 19)
  await Promise.all(survivors.map((app) => stop(app.proc)))
})

/*
 * The edges of the miss path, with two apps in this process standing for two
 * processes: each has its own RedisStore, connection and subscriber, on the
 * same Redis, and requests go through Fastify's inject (one Host for both).
 */
interface Pair {
  readonly a: FastifyInstance
  readonly b: FastifyInstance
  /** The store connections of a and b. */
  readonly clients: Redis[]
  runs: number
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

type RouteOptions = { group?: string; ttl?: number; staleWhileRevalidate?: number; staleIfError?: number; staleIfErrorTimeout?: number }

async function pair(
  t: Test,
  prefix: string,
  handler: (run: number, reply: FastifyReply) => Promise<unknown>,
  route: RouteOptions = {},
  clientFor: () => Redis = () => server.client(),
  flight: { leaseMs: number; waitMs: number } = { leaseMs: 10_000, waitMs: 20_000 },
  /** Route options of `a` alone, when they differ from b's. */
  routeOfA: RouteOptions = route
): Promise<Pair> {
  const state = { runs: 0, clients: [] as Redis[] }
  const make = async (options: RouteOptions): Promise<FastifyInstance> => {
    const client = clientFor()
    state.clients.push(client)
    const app = Fastify()
    await app.register(groupcache, { store: new RedisStore({ client, singleFlight: flight }), prefix, timeout: 10_000 })
    app.get('/r/:id', { config: { cache: { ttl: 60, ...options } } }, (_request, reply) => handler(++state.runs, reply))
    await app.ready()
    t.teardown(async () => {
      await app.close()
      client.disconnect()
    })
    return app
  }
  const [a, b] = await Promise.all([make(routeOfA), make(route)])
  return Object.assign(state, { a, b }) as Pair
}

/** Starts a request on `a`, waits until its handler runs (it holds the lease), then one on `b`. */
async function leaderThenFollower(p: Pair, url: string): Promise<[{ status: string; body: string }, { status: string; body: string }]> {
  const first = p.a.inject(url)
  while (p.runs === 0) await sleep(5)
  const second = p.b.inject(url)
  const [x, y] = await Promise.all([first, second])
  return [
    { status: String(x.headers['cache-status']), body: x.body },
    { status: String(y.headers['cache-status']), body: y.body }
  ]
}

t.test('in one process standing for two: the follower is woken by the release and serves the stored entry as collapsed', async (t) => {
  const p = await pair(t, 'edge0', async (run) => {
    await sleep(200)
    return { run }
  })
  const [leader, follower] = await leaderThenFollower(p, '/r/0')
  t.equal(leader.status, 'groupcache; fwd=miss; stored')
  t.equal(follower.status, 'groupcache; fwd=miss; collapsed')
  t.same([leader.body, follower.body, p.runs], ['{"run":1}', '{"run":1}', 1])
  t.equal(p.b.groupcache.stats().collapsed, 1)
})

t.test('a store fault while re-reading after the wake-up: the follower runs its own handler, answers 200', async (t) => {
  const p = await pair(t, 'edge6', async (run) => {
    await sleep(run === 1 ? 300 : 0)
    return { run }
  })
  const first = p.a.inject('/r/6')
  while (p.runs === 0) await sleep(5)
  const second = p.b.inject('/r/6')
  // b's lookup is done and it waits on its subscriber connection; its main connection goes away.
  await sleep(100)
  p.clients[1]?.disconnect()
  const [x, y] = await Promise.all([first, second])
  t.equal(x.headers['cache-status'], 'groupcache; fwd=miss; stored')
  t.equal(y.statusCode, 200)
  t.same(y.body, '{"run":2}', 'b ran its own handler')
  t.equal(y.headers['cache-status'], 'groupcache; fwd=miss; detail=store-error', 'and could not store it either')
  t.ok(p.b.groupcache.stats().errors >= 1, 'the fault was counted')
})

t.test('the leader\'s response was not stored: the woken follower runs its own handler at once', async (t) => {
  const p = await pair(t, 'edge1', async (run, reply) => {
    await sleep(200)
    reply.header('cache-control', 'no-store')
    return { run }
  })
  const started = Date.now()
  const [leader, follower] = await leaderThenFollower(p, '/r/1')
  t.equal(leader.status, 'groupcache; fwd=miss; detail=no-store')
  t.equal(follower.status, 'groupcache; fwd=miss; detail=no-store', 'not served as collapsed: there was nothing to read')
  t.same([leader.body, follower.body], ['{"run":1}', '{"run":2}'])
  t.ok(Date.now() - started < 5000, 'woken by the release, not by the 10 s lease')
})

t.test('a stale entry the leader did not replace is not served to the woken follower', async (t) => {
  const p = await pair(
    t,
    'edge2',
    async (run, reply) => {
      if (run > 1) {
        await sleep(200)
        reply.header('cache-control', 'no-store')
      }
      return { run }
    },
    { ttl: 1, staleWhileRevalidate: 60 }
  )
  t.equal((await p.a.inject('/r/2')).headers['cache-status'], 'groupcache; fwd=miss; stored')
  await sleep(1100)
  const [leader, follower] = await leaderThenFollower(p, '/r/2')
  t.equal(leader.status, 'groupcache; fwd=miss; detail=no-store')
  t.equal(follower.status, 'groupcache; fwd=miss; detail=no-store', 'the follower ran its handler')
  t.same(follower.body, '{"run":3}')
})

t.test('an unreadable entry is not served to the woken follower', async (t) => {
  const p = await pair(t, 'edge3', async (run, reply) => {
    if (run > 1) {
      await sleep(200)
      reply.header('cache-control', 'no-store')
    }
    return { run }
  })
  t.equal((await p.a.inject('/r/3')).headers['cache-status'], 'groupcache; fwd=miss; stored')
  // This test's own private server: the one entry is easy to find.
  const [key] = await redis.keys('edge3:e:*')
  await redis.set(key as string, Buffer.from([0xff, 0x00, 0x01]), 'PX', 60_000)
  const [leader, follower] = await leaderThenFollower(p, '/r/3')
  t.equal(leader.status, 'groupcache; fwd=miss; detail=no-store')
  t.equal(follower.status, 'groupcache; fwd=miss; detail=no-store')
  t.same(follower.body, '{"run":3}')
  t.equal(p.b.groupcache.stats().errors, 0, 'read as a miss, not as a fault')
})

t.test('a client gone before the leader answered: its lease is released, the follower does not wait for the TTL', async (t) => {
  const p = await pair(t, 'edge4', async (run) => {
    await sleep(run === 1 ? 400 : 0)
    return { run }
  })
  await p.a.listen({ port: 0, host: '127.0.0.1' })
  const address = p.a.server.address() as { port: number }
  const gone = request(`http://127.0.0.1:${address.port}/r/4`, { headers: { host: 'localhost:80' } })
  gone.on('error', () => {})
  gone.end()
  while (p.runs === 0) await sleep(5)
  const started = Date.now()
  const follower = p.b.inject('/r/4')
  await sleep(50)
  gone.destroy()
  const answered = await follower
  t.ok(Date.now() - started < 5000, 'woken by the release on close, not by the 10 s lease')
  t.equal(answered.statusCode, 200)
})

t.test('a single-flight fault is logged and counted; the request runs its handler and is stored', async (t) => {
  const p = await pair(
    t,
    'edge5',
    async (run) => ({ run }),
    {},
    () => {
      const client = server.client()
      // The subscriber connection cannot be opened: lead() rejects.
      client.duplicate = () => {
        const sub = server.client()
        sub.disconnect()
        return sub
      }
      return client
    }
  )
  const res = await p.a.inject('/r/5')
  t.equal(res.headers['cache-status'], 'groupcache; fwd=miss; stored')
  t.equal(p.a.groupcache.stats().errors, 1, 'one store fault counted')
  t.equal((await p.b.inject('/r/5')).headers['cache-status'], 'groupcache; hit; ttl=59')
})

t.test('a leader answered by stale-if-error releases its lease: the follower does not wait for the TTL', async (t) => {
  const p = await pair(
    t,
    'edge7',
    async (run, reply) => {
      if (run === 1) return { run }
      await sleep(run === 2 ? 200 : 0)
      return reply.code(500).send({ failed: run })
    },
    { ttl: 1, staleIfError: 60 }
  )
  t.equal((await p.a.inject('/r/7')).headers['cache-status'], 'groupcache; fwd=miss; stored')
  await sleep(1100)
  const started = Date.now()
  const [leader, follower] = await leaderThenFollower(p, '/r/7')
  t.match(leader.status, /^groupcache; fwd=stale; fwd-status=500; ttl=-\d+; detail=stale-if-error$/)
  t.same(leader.body, '{"run":1}', 'the stale body')
  t.match(follower.status, /detail=stale-if-error$/, 'the follower ran its own (failing) handler and answered stale too')
  t.same(follower.body, '{"run":1}')
  t.ok(Date.now() - started < 5000, 'woken by the release, not by the 10 s lease')
})

/** A gate a handler waits on until the test opens it. */
function gated(): { wait: Promise<void>; open(): void } {
  let open!: () => void
  const wait = new Promise<void>((resolve) => (open = resolve))
  return { wait, open }
}

t.test('a soft bump, two processes: the one without the lease answers with the previous generation at once, its followers too; then the new one', async (t) => {
  let held = gated()
  const p = await pair(t, 'soft0', async (run) => {
    if (run > 1) await held.wait
    return { run }
  }, { group: 'r' })
  t.equal((await p.a.inject('/r/1')).headers['cache-status'], 'groupcache; fwd=miss; stored')
  t.equal((await p.b.inject('/r/1')).body, '{"run":1}')
  await p.a.groupcache.bump('r', {}, { grace: 30 })
  const recompute = p.a.inject('/r/1')
  while (p.runs < 2) await sleep(5)
  const others = await Promise.all([p.b.inject('/r/1'), p.b.inject('/r/1'), p.a.inject('/r/1')])
  for (const other of others) {
    t.match(other.headers['cache-status'], SOFT, 'answered while the recompute is held')
    t.equal(other.body, '{"run":1}', 'with the previous generation')
  }
  t.equal(p.runs, 2, 'b ran no handler: only the lease holder recomputes')
  t.equal(p.b.groupcache.stats().routes['GET /r/:id']?.stale, 2, 'counted as stale answers')
  held.open()
  t.equal((await recompute).headers['cache-status'], 'groupcache; fwd=miss; stored')
  const after = await p.b.inject('/r/1')
  t.equal(after.body, '{"run":2}', 'then b serves the new generation')
  t.match(after.headers['cache-status'], /^groupcache; hit; ttl=\d+$/)

  // Soft, then hard from the other process: b waits for the holder and never serves run 2 again.
  held = gated()
  await p.a.groupcache.bump('r', {}, { grace: 30 })
  await p.b.groupcache.bump('r')
  const leader = p.a.inject('/r/1')
  while (p.runs < 3) await sleep(5)
  let followed = false
  const follower = p.b.inject('/r/1').finally(() => (followed = true))
  await sleep(100)
  t.notOk(followed, 'after the hard bump, b waits for the recompute')
  held.open()
  const [x, y] = await Promise.all([leader, follower])
  t.same([x.body, y.body], ['{"run":3}', '{"run":3}'])
  t.equal(y.headers['cache-status'], 'groupcache; fwd=miss; collapsed')
})

t.test('expired within staleIfError, staleIfErrorTimeout: the process waiting on the lease answers stale at the limit, as does the holder', async (t) => {
  const held = gated()
  const p = await pair(t, 'limit0', async (run) => {
    if (run > 1) await held.wait
    return { run }
  }, { ttl: 1, staleIfError: 60, staleIfErrorTimeout: 0.1 })
  t.equal((await p.a.inject('/r/2')).headers['cache-status'], 'groupcache; fwd=miss; stored')
  await sleep(1100)
  const holder = p.a.inject('/r/2')
  while (p.runs < 2) await sleep(5)
  const waiting = await Promise.all([p.b.inject('/r/2'), p.b.inject('/r/2')])
  for (const answer of waiting) {
    t.match(answer.headers['cache-status'], /^groupcache; fwd=stale; ttl=-\d+; detail=handler-timeout$/, 'b stopped waiting at the limit')
    t.equal(answer.body, '{"run":1}')
  }
  t.match((await holder).headers['cache-status'], /detail=handler-timeout$/, "the holder's own request too")
  t.match((await p.b.inject('/r/2')).headers['cache-status'], /detail=handler-timeout$/, 'b answers stale at once while the holder still runs')
  t.equal(p.runs, 2, 'one handler run in both processes')
  held.open()
  // The holder's late answer is dropped and its lease released: b's flight ends, and b's next request leads.
  await sleep(200)
  const next = await p.b.inject('/r/2')
  t.equal(next.headers['cache-status'], 'groupcache; fwd=miss; stored')
  t.equal(next.body, '{"run":3}')
})

t.test('after a stale answer the background wait goes on: given up at waitMs, it ends the flight; an expired lease it takes over is released at once', async (t) => {
  const held = gated()
  t.teardown(() => held.open())
  const handler = async (run: number) => {
    if (run > 1) await held.wait
    return { run }
  }
  const p = await pair(t, 'soft2', handler, { group: 'r' }, () => server.client(), { leaseMs: 10_000, waitMs: 300 })
  await p.a.inject('/r/3')
  await p.a.groupcache.bump('r', {}, { grace: 30 })
  const holding = p.a.inject('/r/3')
  while (p.runs < 2) await sleep(5)
  t.match((await p.b.inject('/r/3')).headers['cache-status'], SOFT)
  await sleep(400)
  t.match((await p.b.inject('/r/3')).headers['cache-status'], SOFT, "b's wait gave up in the background; a new flight asks again and answers stale again")
  t.equal(p.runs, 2)

  const q = await pair(t, 'soft3', handler, { group: 'r' }, () => server.client(), { leaseMs: 200, waitMs: 10_000 })
  await q.a.inject('/r/3')
  await q.a.groupcache.bump('r', {}, { grace: 30 })
  const stuck = q.a.inject('/r/3')
  while (q.runs < 2) await sleep(5)
  t.match((await q.b.inject('/r/3')).headers['cache-status'], SOFT)
  // a's lease dies at 200 ms; b, still waiting in the background, takes it over and, running nothing, drops it at once.
  await sleep(300)
  t.same(await redis.keys('soft3:l:*'), [], 'no lease left behind (b\'s would live until 400 ms)')
  t.equal(q.runs, 2, 'b ran no handler')
  held.open()
  t.equal((await stuck).headers['cache-status'], 'groupcache; fwd=miss; stored')
  t.equal((await holding).headers['cache-status'], 'groupcache; fwd=miss; stored')
})

t.test('staleIfErrorTimeout while waiting on another process: no stale answer past the window; a flight whose window ended is replaced', async (t) => {
  const held = gated()
  t.teardown(() => held.open())
  const handler = async (run: number) => {
    if (run > 1) await held.wait
    return { run }
  }
  // a, the lease holder, has no time limit of its own: it holds the lease until its handler answers.
  const p = await pair(t, 'limit1', handler, { ttl: 1, staleIfError: 2, staleIfErrorTimeout: 1.5 }, () => server.client(), undefined, { ttl: 1, staleIfError: 2 })
  t.equal((await p.a.inject('/r/4')).headers['cache-status'], 'groupcache; fwd=miss; stored')
  // Expired 1 s ago: the window (2 s) ends before b's limit (1.5 s) would pass.
  await sleep(2000)
  const holder = p.a.inject('/r/4')
  while (p.runs < 2) await sleep(5)
  let waited = false
  const waiting = p.b.inject('/r/4').finally(() => (waited = true))
  await sleep(1700)
  t.notOk(waited, 'b did not answer with an entry that would be past its window at the limit: it waits')
  held.open()
  const [x, y] = await Promise.all([holder, waiting])
  t.equal(x.headers['cache-status'], 'groupcache; fwd=miss; stored')
  t.equal(y.headers['cache-status'], 'groupcache; fwd=miss; collapsed')

  const again = gated()
  t.teardown(() => again.open())
  const q = await pair(t, 'limit2', async (run) => {
    if (run > 1) await again.wait
    return { run }
  }, { ttl: 1, staleIfError: 1.5, staleIfErrorTimeout: 0.1 }, () => server.client(), undefined, { ttl: 1, staleIfError: 1.5 })
  await q.a.inject('/r/5')
  await sleep(1100)
  const held2 = q.a.inject('/r/5')
  while (q.runs < 2) await sleep(5)
  t.match((await q.b.inject('/r/5')).headers['cache-status'], /detail=handler-timeout$/, 'b answers stale at its limit, and keeps waiting in the background')
  // Past the window, b's flight (still waiting on a's lease) no longer answers: a new request leads a new flight.
  await sleep(1500)
  const late = q.b.inject('/r/5')
  await sleep(100)
  again.open()
  const [led, followed] = await Promise.all([held2, late])
  t.equal(led.headers['cache-status'], 'groupcache; fwd=miss; stored')
  t.equal(followed.headers['cache-status'], 'groupcache; fwd=miss; collapsed', 'the new flight got the holder\'s entry')
  t.equal(followed.body, '{"run":2}')
  t.equal(q.runs, 2, 'and the old one, woken too, did not take the new one out of the table')
  t.match((await q.b.inject('/r/5')).headers['cache-status'], /^groupcache; hit/)
})
