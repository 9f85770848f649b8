/**
 * Orphans: 30 generations × 100 URLs of a param route on Redis (read every URL,
 * then bump the `posts` group), then count the keys left with DBSIZE on a
 * private redis-server. Prints one JSON line. `tsx bench/orphans.ts`
 */
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import groupcache, { RedisStore } from '../lib/index.js'
import { startRedis } from '../test/helpers/redis.js'
import { BODY, POST_GROUPS, POSTS } from './body.js'

const GENERATIONS = 30
const server = await startRedis()
const client = server.client()
try {
  const app = Fastify()
  await app.register(groupcache, { store: new RedisStore({ client }), prefix: 'orphans' })
  app.get('/posts/:id', { config: { cache: POST_GROUPS } }, (_req, reply) => reply.type('application/json').send(BODY))
  await app.ready()
  const statuses: Record<string, number> = {}
  for (let generation = 0; generation < GENERATIONS; generation++) {
    for (let id = 1; id <= POSTS; id++) {
      const res = await app.inject(`/posts/${id}`)
      const status = String(res.headers['cache-status'])
      statuses[status] = (statuses[status] ?? 0) + 1
    }
    await app.groupcache.bump('posts')
  }
  await sleep(200) // stores and deletes are written after the response
  const keys = await client.dbsize()
  await app.close()
  console.log(JSON.stringify({ generations: GENERATIONS, urls: POSTS, keys, statuses }))
} finally {
  client.disconnect()
  await server.stop()
}
