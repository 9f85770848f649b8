import Fastify, { type FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import type { Cluster, Redis } from 'ioredis'
import groupcache, { RedisStore, type GroupcacheOptions } from '../../lib/index.js'

export const STORED = 'groupcache; fwd=miss; stored'
export const silent = { warn() {}, error() {}, info() {}, debug() {} }

/** The "database" the handlers read: every process of the app shares it, as they would share a real one. */
export interface Db {
  v: number
}

export interface Answer {
  status: number
  body: string
  cache: string
}

/**
 * One process of an app on a Redis client: GET /users/:userId answers `v<db.v>`
 * (cached, group user:userId), PUT /users/:userId moves db.v on and bumps the group.
 * The client is the caller's: closed in teardown. The timeout is generous (2 s):
 * these tests share two cores with others, and none of them measures it.
 */
export async function redisApp(t: Test, client: Redis | Cluster, db: Db, options: Partial<GroupcacheOptions> = {}): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(groupcache, { store: new RedisStore({ client }), prefix: 'app', timeout: 2000, logger: silent, ...options })
  app.get('/users/:userId', { config: { cache: { groups: ['user:userId'] } } }, async () => `v${db.v}`)
  app.put('/users/:userId', async (_req, reply) => {
    db.v++
    reply.bumpGroup('user:userId')
    return 'ok'
  })
  await app.ready()
  t.teardown(async () => {
    await app.close()
    client.disconnect()
  })
  return app
}

export async function get(app: FastifyInstance, url = '/users/1'): Promise<Answer> {
  const r = await app.inject(url)
  return { status: r.statusCode, body: r.body, cache: String(r.headers['cache-status']) }
}

/**
 * Requests until `done` holds (or `ms` passed), checking every answer: never a
 * 5xx, never a body other than the current one (a hit on a generation from
 * before the last acknowledged bump is the failure these tests look for).
 */
export async function pollUntil(t: Test, app: FastifyInstance, db: Db, done: (a: Answer) => boolean, what: string, ms = 20_000): Promise<Answer[]> {
  const seen: Answer[] = []
  const end = Date.now() + ms
  for (;;) {
    const answer = await get(app)
    seen.push(answer)
    if (answer.status !== 200) t.fail(`a ${answer.status} while waiting for ${what}: ${answer.body}`)
    if (answer.body !== `v${db.v}`) t.fail(`served ${answer.body} (${answer.cache}) while the data is v${db.v}, waiting for ${what}`)
    if (done(answer)) return seen
    if (Date.now() > end) {
      t.fail(`timed out waiting for ${what}; last: ${JSON.stringify(answer)}`)
      return seen
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
