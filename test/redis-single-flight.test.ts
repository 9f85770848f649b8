import t from 'tap'
import { RedisSingleFlight, singleFlightSettings, type Lease } from '../lib/store/redis-single-flight.js'
import { RedisStore } from '../lib/store/redis.js'
import { RedisCluster, startRedis } from './helpers/redis.js'

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

t.test('a crashed leader delays followers by at most the lease TTL: one follower takes the lease over, the other waits for it', async (t) => {
  const [a, b, c] = fleet({ leaseMs: 300, waitMs: 10_000 }) as [RedisSingleFlight, RedisSingleFlight, RedisSingleFlight]
  const crashed = await a.lead('entry-b')
  t.ok(isLease(crashed), 'a holds the lease and never releases it')
  const before = Date.now()
  const outcomes = [b.lead('entry-b'), c.lead('entry-b')]
  const first = await Promise.race(outcomes)
  t.ok(isLease(first), 'the first follower to settle took the expired lease over')
  t.ok(Date.now() - before < 2000, 'within about the lease TTL, not waitMs')
  t.equal(b.waiting + c.waiting, 1, 'exactly one take-over: the other follower waits while it holds the lease')
  await (first as Lease).release()
  const both = await Promise.all(outcomes)
  const other = both.find((o) => o !== first)
  // Usually woken by the release; on a loaded machine its re-ask (at the crashed lease's expiry) can reach Redis
  // just after the release, and then it takes the free lease: still one holder at a time.
  t.ok(other === 'released' || isLease(other), "the other was woken by the new holder's release, or took the lease after it")
  if (isLease(other)) await other.release()
})

t.test('a wait gives up at waitMs in total, across re-asks; a lease key without a TTL is not honoured for ever', async (t) => {
  const [b] = fleet({ leaseMs: 100, waitMs: 350 }) as [RedisSingleFlight]
  // A lease nobody will release and that never expires (set by hand: leases always have a TTL).
  await clients[0]?.set(b.leaseKey('entry-w'), 'someone')
  const before = Date.now()
  t.equal(await b.lead('entry-w'), 'timeout')
  const waited = Date.now() - before
  t.ok(waited >= 340 && waited < 3000, `gave up after waitMs, re-asking every leaseMs meanwhile (${waited} ms)`)
  t.equal(b.waiting, 0)
  await clients[0]?.del(b.leaseKey('entry-w'))
})

t.test('a holder whose lease expired does not release the lease another process took since', async (t) => {
  // c waits far less than b's lease lives: a loaded machine cannot let b's lease expire during c's wait.
  const [a, b, c] = fleet({ leaseMs: 500, waitMs: 100 }) as [RedisSingleFlight, RedisSingleFlight, RedisSingleFlight]
  const old = await a.lead('entry-c')
  await new Promise((resolve) => setTimeout(resolve, 600))
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

t.test('the option is checked at construction, naming the field at fault', async (t) => {
  t.equal(singleFlightSettings(undefined), undefined)
  t.equal(singleFlightSettings(false), undefined)
  t.same(singleFlightSettings(true), { leaseMs: 5000, waitMs: 10_000 })
  t.same(singleFlightSettings({ leaseMs: 800 }), { leaseMs: 800, waitMs: 10_000 })
  t.throws(() => singleFlightSettings('yes'), { code: 'GC_INVALID_OPTION', message: /singleFlight must be a boolean/ })
  t.throws(() => singleFlightSettings(null), { code: 'GC_INVALID_OPTION' })
  t.throws(() => singleFlightSettings({ leaseMs: 0 }), { code: 'GC_INVALID_OPTION', message: /singleFlight\.leaseMs/ })
  t.throws(() => singleFlightSettings({ waitMs: 1.5 }), { code: 'GC_INVALID_OPTION', message: /singleFlight\.waitMs/ })
  t.throws(() => new RedisSingleFlight(clients[0] as never, { prefix: 'x', leaseMs: -1 }), { code: 'GC_INVALID_OPTION' })
})

t.test('a Redis that does not answer costs at most waitMs; a lease granted after that is released at once', async (t) => {
  const frozen = await startRedis()
  const client = frozen.client()
  const flight = new RedisSingleFlight(client, { prefix: 'sf-frozen', leaseMs: 5000, waitMs: 300 })
  t.teardown(async () => {
    frozen.thaw()
    await flight.close()
    client.disconnect()
    await frozen.stop()
  })
  const warm = await flight.lead('warm')
  t.ok(isLease(warm))
  await (warm as Lease).release()
  frozen.freeze()
  const before = Date.now()
  const leading = flight.lead('entry-f')
  await new Promise((resolve) => setTimeout(resolve, 50))
  // Closing wakes the parked waiter first; the bounded ask then gives up as well.
  const closing = flight.close()
  t.equal(await leading, 'timeout', 'gave up instead of hanging')
  t.ok(Date.now() - before < 3000)
  frozen.thaw()
  await closing
  // The SET NX sent while frozen is answered now, and its lease dropped: the next caller leads.
  const observer = frozen.client()
  t.teardown(() => observer.disconnect())
  let leaseLeft = 1
  for (let i = 0; i < 100 && leaseLeft === 1; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    leaseLeft = await observer.exists(flight.leaseKey('entry-f'))
  }
  t.equal(leaseLeft, 0, 'the late lease was released, long before its 5 s TTL')
})

t.test('a closed instance leads nothing and opens no connection', async (t) => {
  const [a] = fleet() as [RedisSingleFlight]
  await a.close()
  await a.close()
  t.equal(await a.lead('entry-closed'), 'timeout')
  t.equal(await clients[0]?.exists(a.leaseKey('entry-closed')), 0)
})

t.test('a subscriber that cannot subscribe rejects lead(); the next call tries again', async (t) => {
  const client = server.client()
  const flight = new RedisSingleFlight(client, { prefix: 'sf-nosub' })
  t.teardown(async () => {
    await flight.close()
    client.disconnect()
  })
  const duplicate = client.duplicate.bind(client)
  let broken = true
  client.duplicate = () => {
    const sub = duplicate()
    if (broken) sub.disconnect()
    return sub
  }
  await t.rejects(flight.lead('entry-s'))
  t.equal(flight.waiting, 0)
  broken = false
  const lease = await flight.lead('entry-s')
  t.ok(isLease(lease), 'subscribed on the second try')
  await (lease as Lease).release()
})

t.test('RedisStore: off by default; on, one instance made on first use, named by the first attached prefix, none after close', async (t) => {
  const client = server.client()
  t.teardown(() => client.disconnect())
  t.equal(new RedisStore({ client }).singleFlight, undefined, 'off unless asked for')
  t.throws(() => new RedisStore({ client, singleFlight: { waitMs: 0 } }), { code: 'GC_INVALID_OPTION', message: /singleFlight\.waitMs/ })

  const unattached = new RedisStore({ client, singleFlight: true })
  const flight = unattached.singleFlight as RedisSingleFlight
  t.equal(unattached.singleFlight, flight, 'the same instance every time')
  t.match(flight.leaseKey('gc:e:x'), /^gc:l:/, 'the default prefix when no cache attached')
  await unattached.close()
  t.equal(unattached.singleFlight, undefined, 'a closed store opens nothing more')

  const store = new RedisStore({ client, singleFlight: { leaseMs: 1000 } })
  const context = { epochKey: 'x:epoch', logger: console, reportFault: () => {} }
  store.attach({ ...context, prefix: 'first' })
  store.attach({ ...context, prefix: 'second' })
  const named = store.singleFlight as RedisSingleFlight
  t.match(named.leaseKey('e'), /^first:l:/)
  t.equal(named.leaseMs, 1000)
  t.equal(named.waitMs, 10_000)
  const lease = await named.lead('entry-store')
  t.ok(isLease(lease))
  await store.close()
  t.equal(named.waiting, 0)
  t.equal(await named.lead('entry-store-2'), 'timeout', 'closed with the store')
  await (lease as Lease).release()
})

t.test('release() never rejects, even when Redis is gone; cold: an entry stored since the lookup answers released', async (t) => {
  const client = server.client()
  const flight = new RedisSingleFlight(client, { prefix: 'sf-rel' })
  t.teardown(async () => {
    await flight.close()
    client.disconnect()
  })
  await clients[0]?.set('sf-rel:e:stored', 'bytes', 'PX', 10_000)
  t.equal(await flight.lead('sf-rel:e:stored', true), 'released', 'the entry is there: read it, no lease')
  t.equal(await clients[0]?.exists(flight.leaseKey('sf-rel:e:stored')), 0, 'and no lease was taken')
  const notCold = await flight.lead('sf-rel:e:stored')
  t.ok(isLease(notCold), 'without cold (a stale entry is there), the lease is taken')
  await (notCold as Lease).release()
  const lease = await flight.lead('entry-gone')
  client.disconnect()
  await t.resolves((lease as Lease).release())
})

t.test('on a 3-master Cluster: one leader, the others woken by its release (PUBLISH from a script); cold checks no entry there', async (t) => {
  const cluster = await RedisCluster.start()
  const [c1, c2] = [cluster.client(), cluster.client()]
  const [a, b] = [c1, c2].map((client) => new RedisSingleFlight(client, { prefix: 'sfc', leaseMs: 10_000, waitMs: 10_000 })) as [RedisSingleFlight, RedisSingleFlight]
  t.teardown(async () => {
    await a.close()
    await b.close()
    c1.disconnect()
    c2.disconnect()
    await cluster.stop()
  })
  const held = await a.lead('sfc:e:one')
  t.ok(isLease(held))
  const waiting = b.lead('sfc:e:one')
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(b.waiting, 1)
  await (held as Lease).release()
  t.equal(await waiting, 'released')
  // The entry key and the lease key are in different slots: no EXISTS in the script, the lease is taken.
  await c1.set('sfc:e:two', 'bytes', 'PX', 10_000)
  const cold = await a.lead('sfc:e:two', true)
  t.ok(isLease(cold))
  await (cold as Lease).release()
})

t.test('held: called once when another process holds the lease, before the wait; never for the holder', async (t) => {
  const [a, b] = fleet({ leaseMs: 300, waitMs: 10_000 }) as [RedisSingleFlight, RedisSingleFlight]
  const told: string[] = []
  const lease = await a.lead('entry-held', false, () => told.push('a'))
  t.ok(isLease(lease))
  t.same(told, [], 'the holder is not told')
  // a never releases: b is refused, waits for the TTL, re-asks and takes the lease over.
  const outcome = b.lead('entry-held', false, () => told.push(`b waiting: ${b.waiting}`))
  const taken = await outcome
  t.ok(isLease(taken), 'b took the expired lease over')
  t.same(told, ['b waiting: 1'], 'told once, while already parked (a release then is not missed), not again at the re-ask')
  await (taken as Lease).release()
})
