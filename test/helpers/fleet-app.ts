/**
 * One app process of a fleet (test/fleet-single-flight.test.ts): Fastify with
 * the plugin on a RedisStore with fleet-wide single flight, on a private Redis.
 *
 * argv: <redis port> <cache prefix> <handler ms> <lease ms> <wait ms>
 * stdin: a pipe from the test; the app exits when it closes.
 * stdout: `listening <port>` once ready, then `run <pid>` each time the
 * handler starts. Every handler run is also counted with INCR <prefix>:runs,
 * so the test counts runs across processes from one place.
 *
 * `/feed/:id` (group `feed`) counts its runs in <prefix>:feed-runs and answers
 * the run number; while <prefix>:hold exists, each run waits for an item of
 * the list <prefix>:gate first, so the test sees who waits for a recompute.
 * `PUT /feed?grace=<s>` bumps `feed` (soft with a grace, hard without).
 */
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { groupcache, RedisStore } from '../../lib/index.js'

const [redisPort, prefix, handlerMs, leaseMs, waitMs] = process.argv.slice(2).map((arg, i) => (i === 1 ? arg : Number(arg))) as [number, string, number, number, number]
const counter = new Redis(redisPort, '127.0.0.1')
// BLPOP blocks its connection: a second one, for the gate only.
const blocker = new Redis(redisPort, '127.0.0.1')
const store = new RedisStore({ url: `redis://127.0.0.1:${redisPort}`, singleFlight: { leaseMs, waitMs } })
const app = Fastify()
// The test machine may be loaded: a lookup answered late must not turn into a bypass here.
await app.register(groupcache, { store, prefix, timeout: 10_000 })
app.get<{ Params: { id: string } }>('/report/:id', { config: { cache: { ttl: 60 } } }, async (request) => {
  await counter.incr(`${prefix}:runs`)
  process.stdout.write(`run ${process.pid}\n`)
  await new Promise((resolve) => setTimeout(resolve, handlerMs))
  return { id: request.params.id, by: process.pid }
})
app.get<{ Params: { id: string } }>('/feed/:id', { config: { cache: { group: 'feed', ttl: 60 } } }, async (request) => {
  const run = await counter.incr(`${prefix}:feed-runs`)
  process.stdout.write(`feed-run ${process.pid}\n`)
  if ((await counter.exists(`${prefix}:hold`)) === 1) await blocker.blpop(`${prefix}:gate`, 0)
  return { id: request.params.id, by: process.pid, run }
})
app.put<{ Querystring: { grace?: string } }>('/feed', async (request) => {
  await app.groupcache.bump('feed', {}, request.query.grace === undefined ? undefined : { grace: Number(request.query.grace) })
  return { ok: true }
})
app.addHook('onClose', () => {
  counter.disconnect()
  blocker.disconnect()
})
await app.listen({ port: 0, host: '127.0.0.1' })
const address = app.server.address()
process.stdout.write(`listening ${typeof address === 'object' && address !== null ? address.port : ''}\n`)
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void app.close().then(() => process.exit(0)))
// The test holds this pipe open: when the test process dies however it dies (even SIGKILL), the app goes too.
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()
