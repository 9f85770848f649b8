import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
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
/** Stops accepting connections, lets requests in flight finish, then closes the store. */
let stop: () => Promise<void>
if (onExpress) {
  const { app, gc } = buildExpressApp(store ? { store } : {})
  const server = await new Promise<Server>((resolve) => {
    const listening = app.listen(port, '127.0.0.1', () => resolve(listening))
  })
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  stop = async () => {
    await new Promise((resolve) => server.close(resolve))
    await gc.close()
  }
} else {
  const app = await buildApp({ logger: process.env.LOG === '1', ...(store ? { store } : {}) })
  base = await app.listen({ host: '127.0.0.1', port })
  // The plugin closes the store (and tries pending bumps once more) when the app closes.
  stop = () => app.close()
}

// Ctrl-C or `kill`: close, then let the process end on its own (nothing is left
// to keep it alive). `once`: a second signal gets Node's default, an immediate exit.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.log(`${signal}: closing`)
    void stop().then(() => console.log('closed'))
  })
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
