import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib'
import compress from '@fastify/compress'
import cors from '@fastify/cors'
import etag from '@fastify/etag'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import groupcache from '../lib/index.js'
import { acceptedCodings } from '../lib/http/request-key.js'

/** Header sets of real browsers (and one old client), as they send them to a cross-origin API. */
const BROWSERS: Record<string, Record<string, string>> = {
  chrome: { 'accept-encoding': 'gzip, deflate, br, zstd', origin: 'https://app.example', 'user-agent': 'Mozilla/5.0 Chrome/131.0' },
  firefox: { 'accept-encoding': 'gzip, deflate, br, zstd', origin: 'https://admin.example', 'user-agent': 'Mozilla/5.0 Firefox/133.0' },
  safari: { 'accept-encoding': 'gzip, deflate, br', origin: 'https://app.example', 'user-agent': 'Mozilla/5.0 Safari/605.1.15' },
  legacy: { 'accept-encoding': 'gzip', origin: 'https://admin.example', 'user-agent': 'okhttp/3.12' },
  identity: { origin: 'https://app.example', 'user-agent': 'curl/8.5' }
}

const ITEMS = Array.from({ length: 80 }, (_, i) => ({ id: i, name: `item number ${i}`, tags: ['a', 'b', 'c'] }))
const BODY = JSON.stringify(ITEMS)

function decode(encoding: string | undefined, raw: Buffer): string {
  switch (encoding) {
    case undefined:
    case 'identity':
      return raw.toString()
    case 'gzip':
      return gunzipSync(raw).toString()
    case 'br':
      return brotliDecompressSync(raw).toString()
    case 'deflate':
      return inflateSync(raw).toString()
    default:
      throw new Error(`unexpected encoding ${encoding}`)
  }
}

type Order = 'plugins before groupcache' | 'plugins after groupcache'

async function build(order: Order, corsOrigin: true | string[]): Promise<FastifyInstance> {
  const app = Fastify()
  const plugins = async () => {
    await app.register(cors, { origin: corsOrigin })
    // Node 20 has no zstd: the codings a browser may get are br, gzip and deflate.
    await app.register(compress, { encodings: ['br', 'gzip', 'deflate'] })
  }
  if (order === 'plugins before groupcache') await plugins()
  await app.register(groupcache)
  if (order === 'plugins after groupcache') await plugins()
  return app
}

for (const order of ['plugins before groupcache', 'plugins after groupcache'] as const) {
  for (const corsOrigin of [true, ['https://app.example', 'https://admin.example']] as const) {
    t.test(`compress + cors (origin ${corsOrigin === true ? 'true' : 'list'}), ${order}: ≥ 80% hits, every response right for its client`, async (t) => {
      const app = await build(order, corsOrigin as true | string[])
      t.teardown(() => app.close())
      let runs = 0
      app.get('/items', { config: { cache: true } }, async () => {
        runs++
        return ITEMS
      })
      let hits = 0
      let total = 0
      for (let round = 0; round < 10; round++) {
        for (const [browser, headers] of Object.entries(BROWSERS)) {
          const r = await app.inject({ url: '/items', headers })
          total++
          if (/hit/.test(String(r.headers['cache-status']))) hits++
          const encoding = r.headers['content-encoding'] as string | undefined
          const accepted = acceptedCodings(headers['accept-encoding'] ?? '').split(',')
          if (encoding !== undefined) t.ok(accepted.includes(encoding), `${browser} accepts the ${encoding} it got`)
          // Decoding once gives the JSON: a hit is never compressed twice.
          if (decode(encoding, r.rawPayload) !== BODY) t.fail(`${browser}, round ${round}: the body is not the handler's JSON (${String(r.headers['cache-status'])})`)
          t.equal(r.headers['access-control-allow-origin'], headers.origin, 'CORS is computed for this request, never replayed')
          t.match(String(r.headers.vary), /origin/i)
          if (encoding !== undefined) t.match(String(r.headers.vary), /accept-encoding/i)
        }
      }
      t.ok(hits / total >= 0.8, `hit ratio ${hits}/${total}`)
      t.ok(runs <= 10, `the handler ran ${runs} times for ${total} requests`)
    })
  }
}

t.test('a compressed hit is served as stored: @fastify/compress does not compress it again', async (t) => {
  const app = await build('plugins after groupcache', true)
  t.teardown(() => app.close())
  app.get('/items', { config: { cache: true } }, async () => ITEMS)
  const gzip = { 'accept-encoding': 'gzip' }
  t.equal((await app.inject({ url: '/items', headers: gzip })).headers['cache-status'], 'groupcache; fwd=miss; detail=vary', 'the first response teaches the route its Vary')
  const stored = await app.inject({ url: '/items', headers: gzip })
  t.equal(stored.headers['cache-status'], 'groupcache; fwd=miss; stored')
  const hit = await app.inject({ url: '/items', headers: gzip })
  t.match(hit.headers['cache-status'], /hit/)
  t.equal(hit.headers['content-encoding'], 'gzip')
  t.ok(hit.rawPayload.equals(stored.rawPayload), 'the very bytes stored')
  t.equal(gunzipSync(hit.rawPayload).toString(), BODY)
  const plain = await app.inject({ url: '/items', headers: { 'accept-encoding': 'identity' } })
  t.equal(plain.headers['content-encoding'], undefined, 'a client that accepts no coding never gets a compressed entry')
  t.equal(plain.body, BODY)
})

t.test('a client without Accept-Encoding first: later clients still get bodies they can read', async (t) => {
  const app = await build('plugins before groupcache', true)
  t.teardown(() => app.close())
  app.get('/items', { config: { cache: true } }, async () => ITEMS)
  await app.inject('/items')
  for (const headers of Object.values(BROWSERS)) {
    const r = await app.inject({ url: '/items', headers })
    t.equal(decode(r.headers['content-encoding'] as string | undefined, r.rawPayload), BODY)
  }
})

for (const order of ['etag before groupcache', 'etag after groupcache'] as const) {
  t.test(`@fastify/etag: its ETag is stored and a matching If-None-Match on a hit is a 304 (${order})`, async (t) => {
    const app = Fastify()
    if (order === 'etag before groupcache') await app.register(etag)
    await app.register(groupcache)
    if (order === 'etag after groupcache') await app.register(etag)
    t.teardown(() => app.close())
    let runs = 0
    app.get('/doc', { config: { cache: true } }, async () => `doc ${++runs}`)
    const miss = await app.inject('/doc')
    const tag = miss.headers.etag as string
    t.ok(tag, 'an ETag on the miss')
    const hit = await app.inject('/doc')
    t.equal(hit.headers.etag, tag, 'the same ETag on the hit')
    const revalidated = await app.inject({ url: '/doc', headers: { 'if-none-match': tag } })
    t.equal(revalidated.statusCode, 304)
    t.equal(revalidated.body, '')
    t.equal(runs, 1)
  })
}
