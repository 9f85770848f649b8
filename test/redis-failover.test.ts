import t from 'tap'
import { Redis } from 'ioredis'
import { GenerationalCache } from '../lib/index.js'
import { RedisCluster, RedisSentinel, cli, startReplica, startRedis, waitFor, type RedisServer } from './helpers/redis.js'
import { STORED, get, pollUntil, redisApp } from './helpers/redis-app.js'

/*
 * Versions never go back (DESIGN §3) when a replica that missed an
 * acknowledged bump becomes the primary. Each test makes the replica miss it
 * for real: the replica is frozen (SIGSTOP), the primary drops its replication
 * link (CLIENT KILL TYPE replica) and then acknowledges the bump, and is
 * SIGKILLed before the replica can reconnect and catch up.
 */

/** The replica misses everything the primary acknowledges from now until the primary dies. */
function cutReplication(primary: RedisServer, replica: RedisServer): void {
  replica.freeze()
  cli(primary.port, 'CLIENT', 'KILL', 'TYPE', 'replica')
}

t.test('a replica promoted after missing an acknowledged bump never serves the pre-bump body', async (t) => {
  const primary = await startRedis()
  const replica = await startReplica(primary)
  t.teardown(async () => {
    replica.thaw()
    await primary.stop()
    await replica.stop()
  })
  const db = { v: 0 }
  const app = await redisApp(t, primary.client(), db)
  t.equal((await get(app)).cache, STORED)
  t.equal(cli(primary.port, 'WAIT', '1', '2000'), '1', 'the v0 entry and its versions reached the replica')
  cutReplication(primary, replica)
  t.equal((await app.inject({ method: 'PUT', url: '/users/1' })).statusCode, 200, 'the bump was acknowledged by the primary')
  await primary.kill()
  replica.thaw()
  t.equal(cli(replica.port, 'REPLICAOF', 'NO', 'ONE'), 'OK', 'promoted')
  t.match(cli(replica.port, 'KEYS', 'app:e:*'), /app:e:/, 'the pre-bump entry is on the promoted replica')

  // The store pointed at the promoted replica (a process started after, or reconfigured).
  const promoted = await redisApp(t, replica.client(), db)
  const first = await get(promoted)
  t.equal(first.body, 'v1', `not the pre-bump body (${first.cache})`)
  await pollUntil(t, promoted, db, (a) => a.cache.includes('hit'), 'caching to resume on the promoted replica')
})

t.test('Sentinel: a failover to a replica that missed an acknowledged bump, through ioredis Sentinel support, never serves the pre-bump body and never a 5xx', async (t) => {
  const primary = await startRedis()
  const replica = await startReplica(primary)
  const sentinel = await RedisSentinel.start(primary, 'gcmain')
  t.teardown(async () => {
    replica.thaw()
    await sentinel.stop()
    await primary.stop()
    await replica.stop()
  })
  await waitFor(() => cli(sentinel.port, 'SENTINEL', 'REPLICAS', 'gcmain').includes(String(replica.port)), 'the sentinel to know the replica')
  const client = new Redis({ sentinels: [{ host: '127.0.0.1', port: sentinel.port }], name: 'gcmain', maxRetriesPerRequest: 1 })
  client.on('error', () => {})
  const db = { v: 0 }
  const app = await redisApp(t, client, db, { breaker: { failures: 5, cooldown: 200, maxCooldown: 500 } })
  t.equal((await get(app)).cache, STORED)
  t.match((await get(app)).cache, /hit/)
  t.equal(cli(primary.port, 'WAIT', '1', '2000'), '1')
  cutReplication(primary, replica)
  t.equal((await app.inject({ method: 'PUT', url: '/users/1' })).statusCode, 200, 'the bump was acknowledged by the primary')
  await primary.kill()
  replica.thaw()
  await pollUntil(t, app, db, (a) => a.cache.includes('hit') && cli(replica.port, 'ROLE').startsWith('master'), 'the failover, then caching on the new primary', 40_000)
  t.match(cli(replica.port, 'INFO', 'replication'), /role:master/, 'the sentinel promoted the replica')
})

t.test('Cluster: a shard failover (CLUSTER FAILOVER TAKEOVER) to a replica that missed an acknowledged bump never serves the pre-bump body and never a 5xx', async (t) => {
  const cluster = await RedisCluster.start(1)
  t.teardown(async () => {
    for (const node of cluster.nodes) node.thaw()
    await cluster.stop()
  })
  const db = { v: 0 }
  const client = cluster.client()
  const app = await redisApp(t, client, db, { breaker: { failures: 5, cooldown: 200, maxCooldown: 500 } })
  t.equal((await get(app)).cache, STORED)
  t.match((await get(app)).cache, /hit/)
  await new Promise((resolve) => client.refreshSlotsCache(resolve))
  t.match((await get(app)).cache, /hit/, 'a slot refresh with the same primaries costs nothing')
  // A keyPrefix with a hash tag puts every key in one slot: the identity is kept on that shard only.
  const tagged = await redisApp(t, cluster.client({ keyPrefix: '{gc}:' }), { v: 0 }, { prefix: 'tagged' })
  t.equal((await get(tagged)).cache, STORED)
  t.match((await get(tagged)).cache, /hit/)
  const identityKeys = cluster.nodes.flatMap((n) => cli(n.port, 'KEYS', '{gc}:tagged:server:*').split('\n')).filter((k) => k !== '')
  t.equal(new Set(identityKeys).size, 1, 'one identity key, on the shard that holds the tagged keys')
  // The shard holding the group's version: the bump lands there.
  const groupKey = new GenerationalCache({ prefix: 'app' }).versionKeys(['user:userId'], { userId: '1' })[0] as string
  const keys = cluster.nodes.flatMap((n) => cli(n.port, 'KEYS', 'app:v:*').split('\n'))
  t.ok(keys.includes(groupKey), 'the group version key is in the cluster')
  const master = cluster.owner(groupKey)
  const replica = cluster.replicaOf(master)
  t.equal(cli(master.port, 'WAIT', '1', '2000'), '1', 'the shard replica has the version and the identity key')
  cutReplication(master, replica)
  t.equal((await app.inject({ method: 'PUT', url: '/users/1' })).statusCode, 200, 'the bump was acknowledged by the shard primary')
  await master.kill()
  replica.thaw()
  t.equal(cli(replica.port, 'CLUSTER', 'FAILOVER', 'TAKEOVER'), 'OK')
  await waitFor(() => cli(replica.port, 'ROLE').startsWith('master'), 'the replica to take over')
  await pollUntil(t, app, db, (a) => a.cache.includes('hit'), 'caching to resume after the shard failover', 40_000)
})
