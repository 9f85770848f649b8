import t from 'tap'
import { RedisSingleFlight, type Lease } from '../lib/store/redis-single-flight.js'
import { startRedis } from './helpers/redis.js'

const server = await startRedis()
const clients = [server.client(), server.client(), server.client()]
const flights: RedisSingleFlight[] = []
t.teardown(async () => {
  for (const f of flights) await f.close()
  for (const c of clients) c.disconnect()
  await server.stop()
})
let n = 0
/** One instance per "process": each on its own connection, as separate app processes would be. */
const fleet = (options: { leaseMs?: number; waitMs?: number } = {}) => {
  const prefix = `sf${++n}`
  return clients.map((client) => {
    const flight = new RedisSingleFlight(client, { prefix, ...options })
    flights.push(flight)
    return flight
  })
}
const isLease = (x: unknown): x is Lease => typeof x === 'object' && x !== null

t.test('one leader among concurrent callers on three connections; the others are woken by its release', async (t) => {
  const instances = fleet({ waitMs: 10_000, leaseMs: 10_000 })
  const started = Date.now()
  const outcomes = instances.flatMap((f) => Array.from({ length: 5 }, () => f.lead('entry-a')))
  const settled: unknown[] = []
  for (const p of outcomes) void p.then((o) => settled.push(o))
  // Let every lease request reach Redis before looking.
  await new Promise((resolve) => setTimeout(resolve, 200))
  const leases = settled.filter(isLease)
  t.equal(leases.length, 1, 'exactly one lease taken')
  t.equal(settled.length, 1, 'the others are still waiting')
  t.equal(instances.reduce((sum, f) => sum + f.waiting, 0), 14)
  await (leases[0] as Lease).release()
  const all = await Promise.all(outcomes)
  t.same(all.filter((o) => o === 'released').length, 14, 'every follower woken by the release')
  t.ok(Date.now() - started < 5000, 'woken, not timed out')
  t.equal(instances.reduce((sum, f) => sum + f.waiting, 0), 0, 'nothing left parked')
})

t.test('a crashed leader delays followers by at most the lease TTL, and the next caller can lead', async (t) => {
  const [a, b] = fleet({ leaseMs: 300, waitMs: 10_000 }) as [RedisSingleFlight, RedisSingleFlight]
  const crashed = await a.lead('entry-b')
  t.ok(isLease(crashed), 'a holds the lease and never releases it')
  const before = Date.now()
  t.equal(await b.lead('entry-b'), 'timeout', 'the follower gives up when the lease must have expired')
  t.ok(Date.now() - before < 2000, 'bounded by the lease, not by waitMs')
  const next = await b.lead('entry-b')
  t.ok(isLease(next), 'the expired lease is free again')
  await (next as Lease).release()
})

t.test('a holder whose lease expired does not release the lease another process took since', async (t) => {
  const [a, b, c] = fleet({ leaseMs: 150, waitMs: 150 }) as [RedisSingleFlight, RedisSingleFlight, RedisSingleFlight]
  const old = await a.lead('entry-c')
  await new Promise((resolve) => setTimeout(resolve, 250))
  const current = await b.lead('entry-c')
  t.ok(isLease(old) && isLease(current))
  await (old as Lease).release()
  t.equal(await clients[0]?.exists(b.leaseKey('entry-c')), 1, "b's lease survives a's late release")
  t.equal(await c.lead('entry-c'), 'timeout', 'and still holds others off')
  await (current as Lease).release()
})

t.test('close() wakes its waiters and a fault rejects lead() without leaving a waiter behind', async (t) => {
  const [a, b] = fleet({ leaseMs: 10_000, waitMs: 10_000 }) as [RedisSingleFlight, RedisSingleFlight]
  const held = await a.lead('entry-d')
  const waiting = b.lead('entry-d')
  await new Promise((resolve) => setTimeout(resolve, 100))
  await b.close()
  t.equal(await waiting, 'timeout')
  await (held as Lease).release()

  const broken = server.client()
  const flight = new RedisSingleFlight(broken, { prefix: 'sf-broken' })
  const warm = await flight.lead('warm')
  if (isLease(warm)) await warm.release()
  broken.disconnect()
  await t.rejects(flight.lead('entry-e'))
  t.equal(flight.waiting, 0)
  await flight.close()
})
