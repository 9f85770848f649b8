// Run by test/http-stale-timeout.test.ts in a process holding nothing else
// open (no server, no Redis client): Fastify's inject and a handler that
// never answers. The time limit must still answer the request.
import Fastify from 'fastify'
import groupcache from '../../lib/index.js'

const app = Fastify()
await app.register(groupcache, { staleIfError: 60, staleIfErrorTimeout: 0.05 })
let hang = false
app.get('/a', { config: { cache: { group: 'a' } } }, async () => {
  if (hang) await new Promise(() => {})
  return 'a v1'
})
await app.inject('/a')
await app.groupcache.bump('a', {}, { grace: 30 })
hang = true
const stale = await app.inject('/a')
console.log(JSON.stringify({ body: stale.body, cacheStatus: stale.headers['cache-status'] }))
process.exit(0)
