import { cpSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { cli, startRedis, waitFor } from './helpers/redis.js'
import { STORED, get, pollUntil, redisApp, type Answer } from './helpers/redis-app.js'

/*
 * Versions never go back (DESIGN §3) when Redis restarts from what it had on
 * disk: the pre-bump entry and versions come back with the data, so only the
 * server-identity check stands between them and a stale hit.
 */

t.test('RDB: restarted from a snapshot taken before an acknowledged bump, no pre-bump body is ever served, to this process or to one started after', async (t) => {
  const server = await startRedis([], 'rdb')
  t.teardown(() => server.stop())
  const db = { v: 0 }
  const app = await redisApp(t, server.client(), db)
  t.equal((await get(app)).cache, STORED)
  t.match((await get(app)).cache, /hit/)
  t.equal(cli(server.port, 'SAVE'), 'OK', 'snapshot holds the v0 entry and its versions')
  t.equal((await app.inject({ method: 'PUT', url: '/users/1' })).statusCode, 200, 'the bump was acknowledged')
  t.equal((await get(app)).body, 'v1')
  t.match((await get(app)).cache, /hit/)
  const before = server.runId()

  await server.kill()
  // Lookups made while the server is down wait in ioredis' offline queue and are replayed to the restored server.
  const queued: Promise<Answer>[] = [get(app), get(app), get(app)]
  await new Promise((resolve) => setTimeout(resolve, 100))
  await server.start()
  t.not(server.runId(), before, 'a new server identity')
  t.match(cli(server.port, 'KEYS', 'app:e:*'), /app:e:/, 'the pre-bump entry is back from the snapshot')
  const replayed = await Promise.all(queued)
  for (const answer of replayed) {
    t.equal(answer.status, 200)
    t.equal(answer.body, 'v1', `a queued lookup replayed to the restored server is not served v0 (${answer.cache})`)
  }
  const seen = await pollUntil(t, app, db, (a) => a.cache.includes('hit'), 'caching to resume')
  t.ok([...replayed, ...seen].some((a) => a.cache === STORED), 'stored anew after the restore')

  const later = await redisApp(t, server.client(), db)
  t.equal((await get(later)).body, 'v1', 'a process started after the restore')
})

t.test('RDB: a process that first connects after the restore moves the epoch too', async (t) => {
  const server = await startRedis([], 'rdb')
  t.teardown(() => server.stop())
  const db = { v: 0 }
  const writer = await redisApp(t, server.client(), db)
  t.equal((await get(writer)).cache, STORED)
  cli(server.port, 'SAVE')
  await writer.inject({ method: 'PUT', url: '/users/1' })
  await server.kill()
  await server.start()
  const fresh = await redisApp(t, server.client(), db)
  const first = await get(fresh)
  t.equal(first.body, 'v1', `the restored v0 entry is not served (${first.cache})`)
  t.equal(first.cache, STORED)
  t.match((await get(fresh)).cache, /hit/, 'then caches as usual')
  t.equal((await get(writer)).body, 'v1', 'and the process from before the restart agrees')
})

t.test('AOF (appendfsync everysec): losing the last second of writes never serves the pre-bump body', async (t) => {
  const server = await startRedis([], 'aof')
  t.teardown(() => server.stop())
  const db = { v: 0 }
  const app = await redisApp(t, server.client(), db)
  t.equal((await get(app)).cache, STORED)
  t.match((await get(app)).cache, /hit/)
  // Past one fsync: the AOF on disk now holds the v0 entry and its versions.
  await new Promise((resolve) => setTimeout(resolve, 1500))
  await waitFor(() => /aof_rewrite_in_progress:0/.test(cli(server.port, 'INFO', 'persistence')), 'no AOF rewrite running')
  const durable = join(server.dir, 'durable-aof')
  cpSync(join(server.dir, 'appendonlydir'), durable, { recursive: true })
  t.equal((await app.inject({ method: 'PUT', url: '/users/1' })).statusCode, 200, 'the bump was acknowledged')
  t.equal((await get(app)).body, 'v1')
  // SIGKILL, and the write that had not been fsynced yet is lost (as a power cut within that second loses it).
  await server.kill()
  rmSync(join(server.dir, 'appendonlydir'), { recursive: true, force: true })
  cpSync(durable, join(server.dir, 'appendonlydir'), { recursive: true })
  await server.start()
  t.match(cli(server.port, 'KEYS', 'app:e:*'), /app:e:/, 'the pre-bump entry is back from the AOF')
  await pollUntil(t, app, db, (a) => a.cache.includes('hit'), 'caching to resume')
  const fresh = await redisApp(t, server.client(), db)
  t.equal((await get(fresh)).body, 'v1', 'a process started after the restart')
})
