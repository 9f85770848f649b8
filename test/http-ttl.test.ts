import Fastify from 'fastify'
import t from 'tap'
import groupcache from '../lib/index.js'

t.test('an entry lives for the route ttl, and Age and the Cache-Status ttl count it down', async (t) => {
  t.clock.enter()
  t.teardown(() => t.clock.exit())
  const app = Fastify()
  await app.register(groupcache, { ttl: 60 })
  let runs = 0
  app.get('/short', { config: { cache: { ttl: 10 } } }, async () => `run ${++runs}`)
  app.get('/default', { config: { cache: true } }, async () => `run ${++runs}`)
  await app.ready()
  t.equal((await app.inject('/short')).headers['cache-status'], 'groupcache; fwd=miss; stored')
  await app.inject('/default')
  t.clock.advance(4_000)
  const hit = await app.inject('/short')
  t.equal(hit.headers['cache-status'], 'groupcache; hit; ttl=6')
  t.equal(hit.headers.age, '4')
  t.clock.advance(6_001)
  t.equal((await app.inject('/short')).headers['cache-status'], 'groupcache; fwd=miss; stored', 'expired after 10 s')
  t.equal((await app.inject('/default')).headers['cache-status'], 'groupcache; hit; ttl=49', 'the plugin default is 60 s')
  t.clock.advance(50_000)
  t.equal((await app.inject('/default')).headers['cache-status'], 'groupcache; fwd=miss; stored')
  await app.close()
})
