import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import tap, { type Test } from 'tap'
import { makeConsumer, ROOT, run } from './helpers/consumer.js'
import { startRedis } from './helpers/redis.js'
import { RedisStore } from '../lib/index.js'

/**
 * ioredis is an optional peer dependency: an app on the memory store runs
 * without it, and RedisStore({ url }) without it is a GroupcacheError naming it.
 */

interface Report {
  memory: unknown
  ioredisResolvable?: boolean
  redis: string | { isGroupcacheError: boolean; code: string; message: string }
}

function expectMissing(t: Test, report: Report): void {
  t.equal(report.memory, 'cached', 'the memory store works')
  t.match(report.redis, { isGroupcacheError: true, code: 'GC_MISSING_DEPENDENCY', message: /RedisStore option url needs the 'ioredis' package.*npm install ioredis/ }, 'RedisStore({ url }) names the missing package')
}

tap.test('a consumer project without ioredis installed: groupcache loads, the memory store works, { url } says what to install', async (t) => {
  const consumer = await makeConsumer({ without: ['ioredis'] })
  t.teardown(() => consumer.remove())
  writeFileSync(
    join(consumer.dir, 'main.js'),
    `import { GenerationalCache, GroupcacheError, MemoryStore, RedisStore } from 'groupcache'
import { expressCache } from 'groupcache/express'
const report = { ioredisResolvable: await import('ioredis').then(() => true, () => false) }
const cache = new GenerationalCache({ store: new MemoryStore() })
await cache.set(['posts'], {}, 'cached')
report.memory = await cache.get(['posts'])
await cache.close()
await expressCache().close()
try {
  new RedisStore({ url: 'redis://127.0.0.1:1' })
  report.redis = 'constructed'
} catch (err) {
  report.redis = { isGroupcacheError: err instanceof GroupcacheError, code: err.code, message: err.message }
}
console.log(JSON.stringify(report))
`
  )
  const { stdout } = await run(process.execPath, ['main.js'], { cwd: consumer.dir })
  const report = JSON.parse(stdout) as Report
  t.equal(report.ioredisResolvable, false, 'ioredis really cannot be imported there')
  expectMissing(t, report)
})

tap.test('the same from the sources, with ioredis made unresolvable for one process', async (t) => {
  // With this process's own flags (its TypeScript loader, and tap's coverage tracking).
  const { stdout } = await run(process.execPath, [...process.execArgv, '--require', join(ROOT, 'test/helpers/without-ioredis.cjs'), join(ROOT, 'test/helpers/without-ioredis-child.ts')], { cwd: ROOT })
  expectMissing(t, JSON.parse(stdout) as Report)
})

tap.test('with ioredis installed, { url } opens a connection the store owns and closes', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const store = new RedisStore({ url: redis.url })
  t.equal(await store.client.ping(), 'PONG')
  await store.close()
  await t.rejects(store.client.ping(), 'closed with the store')
})
