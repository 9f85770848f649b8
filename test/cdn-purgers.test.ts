import t, { type Test } from 'tap'
import { cloudflarePurger } from '../lib/cdn/cloudflare.js'
import { fastlyPurger } from '../lib/cdn/fastly.js'
import { vendorKey } from '../lib/cdn/names.js'
import { varnishPurger } from '../lib/cdn/varnish.js'
import { Generations } from '../lib/core/generations.js'
import { MemoryStore } from '../lib/store/memory.js'
import { FaultyStore } from './helpers/faulty-store.js'
import { freePort } from './helpers/redis.js'
import { startCloudflareApi, startFastlyApi, type VendorApi } from './helpers/vendor-api.js'

const TOKEN = 'tok_SECRET_1234567890'

function recordingLogger() {
  const lines: { level: string; obj: unknown; msg: string | undefined }[] = []
  return {
    lines,
    /** Everything logged, as a string (err objects with their message and stack). */
    text: () => JSON.stringify(lines, (_k, v: unknown) => (v instanceof Error ? { ...v, message: v.message, stack: v.stack } : v)),
    warn: (obj: unknown, msg?: string) => void lines.push({ level: 'warn', obj, msg }),
    error: (obj: unknown, msg?: string) => void lines.push({ level: 'error', obj, msg })
  }
}

async function fastlyApi(t: Test): Promise<VendorApi> {
  const api = await startFastlyApi('SVC1', TOKEN)
  t.teardown(() => api.close())
  return api
}

async function cloudflareApi(t: Test, maxTags?: number): Promise<VendorApi> {
  const api = await startCloudflareApi('ZONE1', TOKEN, maxTags)
  t.teardown(() => api.close())
  return api
}

const names = (n: number): string[] => Array.from({ length: n }, (_, i) => `user:${i}`)

t.test('Fastly: bumps become soft purges by surrogate key, in batches of at most 256, after the bump landed', async (t) => {
  const api = await fastlyApi(t)
  const gens = new Generations({ logger: recordingLogger() })
  const purger = fastlyPurger({ serviceId: 'SVC1', token: TOKEN, endpoint: api.url, logger: recordingLogger() })
  t.teardown(() => purger.close())
  gens.onBump(purger.onBump)
  await gens.bumpMany(['user:userId', 'posts'], { userId: 42 })
  await purger.idle()
  t.same(api.violations, [])
  t.same(api.calls, [{ keys: ['gc/user:42', 'gc/posts'], soft: true }])

  await purger.purge(names(600))
  t.same(api.violations, [], 'every request within the documented shape (256 keys at most)')
  t.same(api.calls.slice(1).map((c) => c.keys.length), [256, 256, 88])
  t.same(new Set(api.calls.slice(1).flatMap((c) => c.keys)), new Set(names(600).map((n) => vendorKey('fastly', 'gc', n))))

  await gens.clear()
  await purger.idle()
  t.same(api.calls.at(-1)?.keys, ['gc'], 'a clear purges the deployment key')
})

t.test('Fastly: a bump the store refused is purged only once its retry landed', async (t) => {
  const api = await fastlyApi(t)
  const store = new FaultyStore(new MemoryStore())
  const gens = new Generations({ store, logger: recordingLogger() })
  t.teardown(() => gens.close())
  const purger = fastlyPurger({ serviceId: 'SVC1', token: TOKEN, endpoint: api.url, soft: false, namespace: 'shop' })
  gens.onBump(purger.onBump)
  store.setFault('error')
  t.equal(await gens.bump('posts'), false)
  await purger.idle()
  t.same(api.calls, [], 'no purge for a bump that did not land')
  store.setFault('none')
  while (gens.getStats().pendingBumps > 0) await new Promise((resolve) => setTimeout(resolve, 10))
  await purger.idle()
  t.same(api.calls, [{ keys: ['shop/posts'], soft: false }], 'purged after the retry landed: hard purge, namespace from options')
  await purger.close()
})

t.test('Cloudflare: purges by tag, within the per-request tag limit; the limit is an option', async (t) => {
  const api = await cloudflareApi(t)
  const purger = cloudflarePurger({ zoneId: 'ZONE1', token: TOKEN, endpoint: api.url })
  await purger.purge([...names(70), 'blogId=7,userId=42'])
  t.same(api.violations, [])
  t.same(api.calls.map((c) => c.keys.length), [30, 30, 11])
  t.ok(api.calls.flatMap((c) => c.keys).includes('gc/blogId=7%2CuserId=42'), 'the comma is escaped in a tag')
  await purger.close()

  const enterprise = await cloudflareApi(t, 500)
  const big = cloudflarePurger({ zoneId: 'ZONE1', token: TOKEN, endpoint: enterprise.url, batchSize: 500 })
  await big.purge(names(120))
  t.same(enterprise.violations, [])
  t.same(enterprise.calls.map((c) => c.keys.length), [121 - 1])
  await big.close()
})

t.test('retries 5xx, 429 and timeouts with backoff, then lands', async (t) => {
  const api = await fastlyApi(t)
  const logger = recordingLogger()
  api.failures.push({ status: 503 }, { status: 429, headers: { 'retry-after': '1' } }, { status: 0, hang: true })
  const purger = fastlyPurger({ serviceId: 'SVC1', token: TOKEN, endpoint: api.url, backoffMs: 5, requestTimeoutMs: 300, logger })
  await purger.purge(['posts'])
  t.same(api.failures, [], 'all three failures were met')
  t.same(api.calls, [{ keys: ['gc/posts'], soft: true }], 'the fourth attempt landed')
  t.same(logger.lines.map((l) => l.level), ['warn', 'warn'])
  t.match(logger.lines[0]?.obj, { err: { status: 503, retryable: true } })
  t.notOk(logger.text().includes(TOKEN))
  await purger.close()
})

t.test("a fetch given in options is used, and whatever it throws is logged as a retryable failure", async (t) => {
  const logger = recordingLogger()
  const seen: string[] = []
  const purger = fastlyPurger({
    serviceId: 'SVC1',
    token: TOKEN,
    retries: 1,
    backoffMs: 1,
    logger,
    fetch: async (url) => {
      seen.push(String(url))
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- some fetch polyfills reject with strings
      throw 'offline'
    }
  })
  await purger.purge(['posts'])
  t.same(seen, ['https://api.fastly.com/service/SVC1/purge', 'https://api.fastly.com/service/SVC1/purge'], 'default endpoint, retried once')
  t.match(logger.lines.at(-1), { level: 'error', obj: { err: { message: 'fastly purge: request failed: offline', retryable: true } } })
  await purger.close()
})

t.test('credentials are never logged: refused token, echoed token, unreachable API', async (t) => {
  const api = await fastlyApi(t)
  const logger = recordingLogger()
  const wrong = fastlyPurger({ serviceId: 'SVC1', token: `${TOKEN}-wrong`, endpoint: api.url, logger })
  await wrong.purge(['posts'])
  t.equal(logger.lines.length, 1, 'a 401 is not retried')
  t.match(logger.lines[0], { level: 'error', obj: { err: { status: 401, code: 'GC_PURGE_FAILED' } } })

  api.failures.push({ status: 403, body: JSON.stringify({ msg: `token ${TOKEN} is not allowed` }) })
  const echoed = fastlyPurger({ serviceId: 'SVC1', token: TOKEN, endpoint: api.url, logger })
  await echoed.purge(['posts'])
  t.match(logger.text(), /token \[redacted\] is not allowed/, 'the body is logged, the token redacted')

  const cf = await cloudflareApi(t)
  cf.failures.push({ status: 200, body: JSON.stringify({ success: false, errors: [{ message: `bad ${TOKEN}` }] }) }, { status: 200, body: 'not json' })
  const cfPurger = cloudflarePurger({ zoneId: 'ZONE1', token: TOKEN, endpoint: cf.url, logger })
  await cfPurger.purge(['a'])
  const cfPurger2 = cloudflarePurger({ zoneId: 'ZONE1', token: TOKEN, endpoint: cf.url, logger })
  await cfPurger2.purge(['b'])
  t.match(logger.text(), /not accepted: .*bad \[redacted\]/, '200 with success:false is a failure, not retried')
  t.match(logger.text(), /not accepted: not json/)
  t.same(cf.calls, [])

  const wrongCf = cloudflarePurger({ zoneId: 'ZONE1', token: 'other-token', endpoint: cf.url, logger })
  await wrongCf.purge(['c'])
  t.match(logger.lines.at(-1), { obj: { err: { status: 403 } } })

  const closedPort = await freePort()
  const down = cloudflarePurger({ zoneId: 'ZONE1', token: TOKEN, endpoint: `http://127.0.0.1:${closedPort}`, retries: 1, backoffMs: 5, logger })
  await down.purge(['d'])
  t.match(logger.lines.at(-1), { level: 'error', msg: /failed after 2 attempt/ })
  t.match(logger.text(), /request failed: TypeError: fetch failed \(.*ECONNREFUSED/)
  t.notOk(logger.text().includes(TOKEN), 'the token appears in no log line')
  t.notOk(logger.text().includes('other-token'))
  for (const p of [wrong, echoed, cfPurger, cfPurger2, wrongCf, down]) await p.close()
})

t.test('options are checked when a purger is built', async (t) => {
  const bad: [() => unknown, RegExp][] = [
    [() => fastlyPurger({ serviceId: '', token: TOKEN }), /fastly purger: option serviceId/],
    [() => fastlyPurger({ serviceId: 'S', token: undefined as never }), /fastly purger: option token/],
    [() => fastlyPurger({ serviceId: 'S', token: TOKEN, batchSize: 257 }), /option batchSize must be an integer from 1 to 256/],
    [() => fastlyPurger({ serviceId: 'S', token: TOKEN, requestTimeoutMs: 0 }), /fastly purger: option requestTimeoutMs/],
    [() => fastlyPurger({ serviceId: 'S', token: TOKEN, namespace: 'a/b' }), /fastly purger: option namespace/],
    [() => cloudflarePurger({ zoneId: 'Z', token: '' }), /cloudflare purger: option token/],
    [() => cloudflarePurger({ zoneId: 'Z', token: TOKEN, batchSize: 0 }), /cloudflare purger: option batchSize/],
    [() => varnishPurger({ url: 'localhost:6081' }), /varnish purger: option url/],
    [() => varnishPurger({ url: [] }), /varnish purger: option url/],
    [() => varnishPurger({ url: 'http://127.0.0.1:6081', batchSize: 1.5 }), /varnish purger: option batchSize/]
  ]
  for (const [build, message] of bad) t.throws(build, { code: 'GC_INVALID_OPTION', message })
  for (const p of [fastlyPurger({ serviceId: 'S', token: TOKEN }), cloudflarePurger({ zoneId: 'Z', token: TOKEN }), varnishPurger({ url: ['http://127.0.0.1:1'], soft: true })]) await p.close()
})
