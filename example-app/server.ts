import { RedisStore } from '../lib/index.js'
import { buildApp } from './app.js'

const port = Number(process.env.PORT ?? 3000)
// REDIS_URL=redis://127.0.0.1:6379 shares the cache between processes; without it, memory.
const redisUrl = process.env.REDIS_URL
const app = await buildApp({ logger: process.env.LOG === '1', ...(redisUrl ? { store: new RedisStore({ url: redisUrl }) } : {}) })
const base = await app.listen({ host: '127.0.0.1', port })
const h = "-s -D - -o /dev/null"

console.log(`groupcache example blog on ${base} (${redisUrl ? `Redis store at ${redisUrl}` : 'in-memory store'})

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
  curl ${h} ${base}/about                   # view group
  curl -s -X POST ${base}/admin/clear       # O(1) flush
  curl -s ${base}/admin/stats
`)
