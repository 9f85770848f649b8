import { brotliDecompressSync, gunzipSync, gzipSync, inflateSync } from 'node:zlib'
import compression from 'compression'
import cors from 'cors'
import express from 'express'
import helmet from 'helmet'
import t from 'tap'
import { expressCache } from '../lib/express.js'
import type { HttpResult } from './helpers/http.js'
import { HIT, listenExpress, STORED } from './helpers/express-stack.js'

const quiet = { logger: { warn() {}, error() {} } }
const PAGE = JSON.stringify({ posts: Array.from({ length: 60 }, (_, i) => ({ id: i, title: `post number ${i}` })) })

/** Realistic header sets of five browsers fetching the API cross-origin. */
const BROWSERS: Record<string, string>[] = [
  { 'user-agent': 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36', accept: 'application/json, text/plain, */*', 'accept-encoding': 'gzip, deflate, br, zstd', 'accept-language': 'en-US,en;q=0.9', origin: 'https://app.example.com', 'sec-fetch-mode': 'cors' },
  { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0', accept: '*/*', 'accept-encoding': 'gzip, deflate, br, zstd', 'accept-language': 'fr-FR,fr;q=0.8,en-US;q=0.5', origin: 'https://app.example.com', 'sec-fetch-mode': 'cors' },
  { 'user-agent': 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15', accept: '*/*', 'accept-encoding': 'gzip, deflate, br', 'accept-language': 'de-DE,de;q=0.9', origin: 'https://admin.example.com' },
  { 'user-agent': 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0', accept: 'application/json', 'accept-encoding': 'gzip, deflate, br, zstd', 'accept-language': 'en-GB,en;q=0.9', origin: 'https://admin.example.com', 'sec-fetch-mode': 'cors' },
  { 'user-agent': 'okhttp/4.12.0', accept: 'application/json', 'accept-encoding': 'gzip' }
]

function decoded(r: HttpResult): string {
  const coding = r.headers['content-encoding']
  if (coding === 'gzip') return gunzipSync(r.raw).toString('utf8')
  if (coding === 'br') return brotliDecompressSync(r.raw).toString('utf8')
  if (coding === 'deflate') return inflateSync(r.raw).toString('utf8')
  return r.body
}

function stackApp() {
  const gc = expressCache(quiet)
  const app = express()
  app.use(compression())
  app.use(cors({ origin: ['https://app.example.com', 'https://admin.example.com'] }))
  app.use(helmet())
  let runs = 0
  app.get('/posts', gc.route(true), (_req, res) => {
    runs++
    res.type('json').send(PAGE)
  })
  return { gc, app, runs: () => runs }
}

t.test('compression + cors + helmet: five browsers, repeated requests are mostly hits, each gets what it accepts', async (t) => {
  const { gc, app, runs } = stackApp()
  const get = await listenExpress(t, app, gc)
  let hits = 0
  let total = 0
  for (let round = 0; round < 6; round++) {
    for (const headers of BROWSERS) {
      const r = await get('GET', '/posts', headers)
      total++
      if (HIT.test(String(r.headers['cache-status']))) hits++
      t.equal(r.status, 200)
      t.equal(decoded(r), PAGE, 'decoded once, the body is the page: never compressed twice')
      const accepted = headers['accept-encoding'] as string
      const coding = r.headers['content-encoding']
      t.ok(coding !== undefined && accepted.includes(coding), `served ${coding} to a client accepting ${accepted}`)
      if (HIT.test(String(r.headers['cache-status']))) {
        // compression streams what it compresses (no Content-Length): a hit with one was not compressed again.
        t.equal(r.headers['content-length'], String(r.raw.length), 'a hit is the stored encoded variant, not compressed again')
      }
      t.match(String(r.headers.vary), /Accept-Encoding/i)
      if (headers.origin !== undefined) {
        t.equal(r.headers['access-control-allow-origin'], headers.origin, 'CORS answers this request’s origin, live')
        t.match(String(r.headers.vary), /Origin/)
      } else t.equal(r.headers['access-control-allow-origin'], undefined)
      t.equal(r.headers['x-content-type-options'], 'nosniff', 'helmet’s headers are on every response')
    }
  }
  t.ok(hits / total >= 0.8, `hit ratio ${hits}/${total}`)
  t.equal(runs(), total - hits)
  const expected: [string, string | undefined][] = [['identity', undefined], ['identity', undefined], ['gzip;q=0, br;q=0', undefined], ['gzip, deflate;q=0', 'gzip']]
  for (const [accept, coding] of expected) {
    const r = await get('GET', '/posts', { 'accept-encoding': accept })
    t.equal(decoded(r), PAGE)
    t.equal(r.headers['content-encoding'], coding, `${coding} for ${accept}`)
  }
  t.match((await get('GET', '/posts', { 'accept-encoding': 'identity' })).headers['cache-status'], HIT)
  t.equal((await get('GET', '/posts', { 'accept-encoding': 'identity' })).headers['content-encoding'], undefined, 'a client that accepts no coding gets the plain variant from a hit')
})

t.test('headers set before the cached route are live on hits, never replayed from the entry', async (t) => {
  const gc = expressCache(quiet)
  const app = express()
  let remaining = 100
  let nonce = 0
  app.use((_req, res, next) => {
    res.setHeader('x-ratelimit-remaining', String(--remaining))
    res.locals.nonce = `n${++nonce}`
    next()
  })
  app.use(helmet({ contentSecurityPolicy: { directives: { scriptSrc: ["'self'", (_req, res) => `'nonce-${(res as express.Response).locals.nonce}'`] } } }))
  app.get('/page', gc.route(true), (_req, res) => {
    res.setHeader('x-from-handler', 'yes')
    res.send('page')
  })
  const get = await listenExpress(t, app, gc)
  const miss = await get('GET', '/page')
  t.equal(miss.headers['cache-status'], STORED)
  t.equal(miss.headers['x-ratelimit-remaining'], '99')
  const hit = await get('GET', '/page')
  t.match(hit.headers['cache-status'], HIT)
  t.equal(hit.headers['x-ratelimit-remaining'], '98', 'the rate-limit header is this request’s, not the stored one')
  t.match(hit.headers['content-security-policy'], /'nonce-n2'/, 'the CSP nonce is this request’s')
  t.equal(hit.headers['x-from-handler'], 'yes', 'the handler’s headers are the entry’s')
})

t.test('a header the handler changes after a middleware set it is part of the response', async (t) => {
  const gc = expressCache(quiet)
  const app = express()
  app.use((_req, res, next) => {
    res.setHeader('cache-control', 'no-cache')
    next()
  })
  app.get('/public', gc.route(true), (_req, res) => {
    res.setHeader('cache-control', 'public, max-age=60')
    res.send('public')
  })
  app.get('/default', gc.route(true), (_req, res) => void res.send('default'))
  const get = await listenExpress(t, app, gc)
  t.equal((await get('GET', '/public')).headers['cache-status'], STORED)
  const hit = await get('GET', '/public')
  t.match(hit.headers['cache-status'], HIT)
  t.equal(hit.headers['cache-control'], 'public, max-age=60')
  t.match((await get('GET', '/default')).headers['cache-status'], /detail=no-cache/, 'judged on the headers actually written')
})

t.test('compression mounted after the cache: only the uncompressed variant is stored, each client gets what it accepts', async (t) => {
  const gc = expressCache(quiet)
  const app = express()
  let runs = 0
  app.get('/posts', gc.route(true), compression(), (_req, res) => {
    runs++
    res.type('json').send(PAGE)
  })
  const get = await listenExpress(t, app, gc)
  const identity = { 'accept-encoding': 'identity' }
  for (const headers of [BROWSERS[0], identity, BROWSERS[2], identity, BROWSERS[4], BROWSERS[0]] as Record<string, string>[]) {
    const r = await get('GET', '/posts', headers)
    t.equal(decoded(r), PAGE)
    const coding = r.headers['content-encoding']
    t.ok(coding === undefined || (headers['accept-encoding'] as string).includes(coding), `served ${coding} to ${headers['accept-encoding']}`)
    if (coding !== undefined) t.notMatch(r.headers['cache-status'], HIT, 'compressed bytes pass through the cache as a stream')
  }
  const hit = await get('GET', '/posts', identity)
  t.match(hit.headers['cache-status'], HIT)
  t.equal(hit.headers['content-encoding'], undefined)
  t.ok(runs >= 5)
})

t.test('a Vary the handler sets splits the entry (learned), and joins the live Vary of CORS on hits', async (t) => {
  const gc = expressCache(quiet)
  const app = express()
  let runs = 0
  const handler = (req: express.Request, res: express.Response) => {
    runs++
    res.vary('Accept-Language')
    res.send(String(req.headers['accept-language']).startsWith('fr') ? 'bonjour' : 'hello')
  }
  app.get('/plain', gc.route(true), handler)
  app.get('/cors', cors({ origin: true }), gc.route(true), handler)
  const get = await listenExpress(t, app, gc)
  for (const path of ['/plain', '/cors']) {
    const origin: Record<string, string> = path === '/cors' ? { origin: 'https://app.example.com' } : {}
    const fr = { 'accept-language': 'fr-FR,fr;q=0.9', ...origin }
    const en = { 'accept-language': 'en-US,en;q=0.9', ...origin }
    t.match((await get('GET', path, fr)).headers['cache-status'], /detail=vary/, `${path}: the first response teaches the route its Vary`)
    t.equal((await get('GET', path, fr)).headers['cache-status'], STORED)
    t.equal((await get('GET', path, en)).headers['cache-status'], STORED, 'another language is another entry')
    const frHit = await get('GET', path, fr)
    const enHit = await get('GET', path, en)
    t.match(frHit.headers['cache-status'], HIT)
    t.equal(frHit.body, 'bonjour')
    t.equal(enHit.body, 'hello')
    t.equal(enHit.headers.vary, path === '/cors' ? 'Origin, Accept-Language' : 'Accept-Language')
  }
  t.equal(runs, 6)
})

t.test('cors mounted after the cache table: its headers are stored per Origin, never another origin’s', async (t) => {
  const gc = expressCache(quiet)
  const app = express()
  app.use(gc.middleware({ routes: { 'GET /posts': true } }))
  app.use(cors({ origin: ['https://app.example.com', 'https://admin.example.com'] }))
  app.get('/posts', (_req, res) => void res.type('json').send(PAGE))
  const get = await listenExpress(t, app, gc)
  const origins = ['https://app.example.com', 'https://admin.example.com', 'https://evil.example.com']
  let hits = 0
  for (let round = 0; round < 4; round++) {
    for (const origin of origins) {
      const r = await get('GET', '/posts', { origin })
      if (HIT.test(String(r.headers['cache-status']))) hits++
      t.equal(r.headers['access-control-allow-origin'], origin.includes('evil') ? undefined : origin, `${origin}, round ${round}`)
      t.equal(r.body, PAGE)
    }
  }
  t.ok(hits >= 6, `${hits} hits: each origin has its own entry`)
})

t.test('compression picks the coding: deflate too; a coding the handler set or one the cache cannot make again', async (t) => {
  const gc = expressCache(quiet)
  const app = express()
  app.use(compression())
  app.use('/custom', (_req, res, next) => {
    // A writeHead-time middleware with a coding the cache does not know how to make.
    const writeHead = res.writeHead
    res.writeHead = function (this: express.Response, ...args: unknown[]) {
      this.setHeader('content-encoding', 'x-custom')
      return (writeHead as (...a: unknown[]) => express.Response).apply(this, args)
    } as typeof res.writeHead
    next()
  })
  const runs: Record<string, number> = {}
  const count = (name: string) => (runs[name] = (runs[name] ?? 0) + 1)
  app.get('/posts', gc.route(true), (_req, res) => void (count('posts'), res.type('json').send(PAGE)))
  app.get('/pregzipped', gc.route(true), (_req, res) => {
    count('pregzipped')
    res.set({ 'content-type': 'application/json', 'content-encoding': 'gzip' }).send(gzipSync(PAGE))
  })
  app.get('/empty', gc.route(true), (_req, res) => void (count('empty'), res.type('json').end()))
  app.get('/custom', gc.route(true), (_req, res) => void (count('custom'), res.type('json').send(PAGE)))
  const get = await listenExpress(t, app, gc)
  const deflate = { 'accept-encoding': 'deflate' }
  for (let i = 0; i < 3; i++) {
    const r = await get('GET', '/posts', deflate)
    t.equal(r.headers['content-encoding'], 'deflate')
    t.equal(decoded(r), PAGE)
  }
  t.match((await get('GET', '/posts', deflate)).headers['cache-status'], HIT)
  for (let i = 0; i < 3; i++) {
    const r = await get('GET', '/pregzipped', { 'accept-encoding': 'gzip, br' })
    t.equal(r.headers['content-encoding'], 'gzip')
    t.equal(decoded(r), PAGE, 'gzipped once, by the handler')
  }
  t.match((await get('GET', '/pregzipped', { 'accept-encoding': 'gzip, br' })).headers['cache-status'], HIT)
  for (let i = 0; i < 3; i++) {
    const r = await get('GET', '/empty', { 'accept-encoding': 'gzip' })
    t.equal(r.status, 200)
    t.equal(decoded(r), '')
  }
  t.match((await get('GET', '/empty', { 'accept-encoding': 'gzip' })).headers['cache-status'], HIT)
  for (let i = 0; i < 2; i++) {
    const r = await get('GET', '/custom', { 'accept-encoding': 'identity' })
    t.equal(r.headers['content-encoding'], 'x-custom')
    t.match(r.headers['cache-status'], /^groupcache; fwd=miss; detail=/, 'not stored: the cache cannot make that coding')
  }
  t.same(runs, { posts: 2, pregzipped: 2, empty: 2, custom: 2 }, 'one learning miss and one stored miss each; custom never stored')
})

t.test('compression: a body over maxEntryBytes is not stored, and not compressed a second time for the store', async (t) => {
  const gc = expressCache(quiet)
  const app = express()
  app.use(compression())
  app.get('/posts', gc.route({ maxEntryBytes: PAGE.length - 1 }), (_req, res) => void res.type('json').send(PAGE))
  const get = await listenExpress(t, app, gc)
  const statuses: string[] = []
  for (let i = 0; i < 3; i++) {
    const r = await get('GET', '/posts', { 'accept-encoding': 'gzip' })
    t.equal(decoded(r), PAGE)
    statuses.push(String(r.headers['cache-status']))
  }
  t.same(statuses, ['groupcache; fwd=miss; detail=vary', 'groupcache; fwd=miss; detail=too-big', 'groupcache; fwd=miss; detail=too-big'], 'judged on the size before encoding')
})
