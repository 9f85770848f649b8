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

async function pair(
  t: Test,
  prefix: string,
  handler: (run: number, reply: FastifyReply) => Promise<unknown>,
  route: { ttl?: number; staleWhileRevalidate?: number; staleIfError?: number } = {},
  clientFor: () => Redis = () => server.client()
): Promise<Pair> {
  const state = { runs: 0, clients: [] as Redis[] }
  const make = async (): Promise<FastifyInstance> => {
    const client = clientFor()
    state.clients.push(client)
    const app = Fastify()
    await app.register(groupcache, { store: new RedisStore({ client, singleFlight: { leaseMs: 10_000, waitMs: 20_000 } }), prefix, timeout: 10_000 })
    app.get('/r/:id', { config: { cache: { ttl: 60, ...route } } }, (_request, reply) => handler(++state.runs, reply))
    await app.ready()
    t.teardown(async () => {
      await app.close()
      client.disconnect()
    })
    return app
  }
  const [a, b] = await Promise.all([make(), make()])
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
