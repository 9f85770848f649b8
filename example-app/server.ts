import { RedisStore } from '../lib/index.js'
import { buildApp } from './app.js'
import { buildExpressApp } from './express-app.js'

// PORT (default 3000); REDIS_URL=redis://127.0.0.1:6379 shares the cache between
// processes (memory otherwise); `-- --express` serves the same blog on Express.
const port = Number(process.env.PORT ?? 3000)
const redisUrl = process.env.REDIS_URL
const store = redisUrl ? new RedisStore({ url: redisUrl }) : undefined
const onExpress = process.argv.includes('--express')

let base: string
if (onExpress) {
  const { app } = buildExpressApp(store ? { store } : {})
  await new Promise<void>((resolve) => app.listen(port, '127.0.0.1', () => resolve()))
  base = `http://127.0.0.1:${port}`
} else {
  const app = await buildApp({ logger: process.env.LOG === '1', ...(store ? { store } : {}) })
  base = await app.listen({ host: '127.0.0.1', port })
}

const h = '-s -D - -o /dev/null'
console.log(`groupcache example blog on ${base} (${onExpress ? 'Express' : 'Fastify'}, ${redisUrl ? `Redis store at ${redisUrl}` : 'in-memory store'})

Try (watch the Cache-Status header):
  curl ${h} ${base}/users/1                 # miss, stored
  curl ${h} ${base}/users/1                 # hit
  curl -s -X PUT -H 'content-type: application/json' -d '{"name":"Ada L."}' ${base}/users/1
  curl ${h} ${base}/users/1                 # miss again: the PUT bumped user:1
  curl ${h} ${base}/posts                   # group 'posts'
  curl -s -X POST -H 'content-type: application/json' -d '{"title":"Hi"}' ${base}/posts   # declarative bump of 'posts'
  curl ${h} ${base}/users/1/posts           # groups user:1 and posts
  curl ${h} ${base}/blogs/7/posts/1         # list-of-params group
  curl ${h} ${base}/blogs/7/comments        # remap group { blog: '7' }
  curl ${h} -H 'x-tenant: acme' ${base}/feed   # function group, one per tenant
  curl -s -X POST ${base}/feed/acme/refresh    # bump the acme feed
  curl ${h} ${base}/about                   # view group
  curl -s -X POST ${base}/admin/clear       # O(1) flush
  curl -s ${base}/admin/stats
`)
