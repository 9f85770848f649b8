import { writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import express from 'express'
import t from 'tap'
import { expressCache } from '../lib/express.js'
import { listenExpress } from './helpers/express-stack.js'

const STORED = 'groupcache; fwd=miss; stored'
const STREAMED = 'groupcache; fwd=miss; detail=streamed'
const HIT = /^groupcache; hit; ttl=\d+$/

const listen = listenExpress

t.test('a route table caches patterns before the router runs', async (t) => {
  const gc = expressCache({ logger: { warn() {}, error() {} } })
  const app = express()
  app.use(
    gc.middleware({
      routes: {
        'GET /users/:userId': { groups: ['user:userId'] },
        '/files/*path': { groups: [['path']] },
        'get /list{/:page}': { groups: ['list:page'] }
      }
    })
  )
  let runs = 0
  app.get('/users/:userId', (req, res) => void res.send(`user ${req.params.userId} ${++runs}`))
  app.get('/files/*path', (req, res) => void res.send(`file ${(req.params.path as unknown as string[]).join('/')} ${++runs}`))
  app.get('/list{/:page}', (req, res) => void res.send(`list ${req.params.page ?? '-'} ${++runs}`))
  app.post('/users/:userId', (req, res) => void res.bumpGroup('user:userId').send('bumped'))
  const get = await listen(t, app, gc)

  t.equal((await get('GET', '/users/4%20x')).headers['cache-status'], STORED)
  const hit = await get('GET', '/users/4%20x')
  t.match(hit.headers['cache-status'], HIT)
  t.equal(hit.body, 'user 4 x 1')
  t.equal(runs, 1, 'a hit never reaches the router')
  t.match((await get('HEAD', '/users/4%20x')).headers['cache-status'], HIT)
  await gc.bump('user:userId', { userId: '4 x' })
  t.equal((await get('GET', '/users/4%20x')).body, 'user 4 x 2', 'the param was decoded into the group')
  t.equal((await get('POST', '/users/4%20x')).headers['cache-status'], undefined, 'only GET is cached')
  t.equal((await get('GET', '/users/4%20x')).headers['cache-status'], STORED, 'res.bumpGroup took its values from req.params')

  await get('GET', '/files/a/b')
  t.match((await get('GET', '/files/a/b')).headers['cache-status'], HIT)
  await gc.bump(['path'], { path: 'a/b' })
  t.equal((await get('GET', '/files/a/b')).headers['cache-status'], STORED, 'wildcard segments are joined with /')

  await get('GET', '/list')
  t.match((await get('GET', '/list')).headers['cache-status'], HIT)
  t.equal((await get('GET', '/list/2')).headers['cache-status'], STORED)
  t.equal((await get('GET', '/nowhere')).status, 404)
  t.equal((await get('GET', '/users/%E0%A4%A')).status, 400, 'a path the table cannot decode goes to Express untouched')
})

t.test('bad route tables fail at setup with path-to-regexp’s reason, and a hint for Fastify syntax', async (t) => {
  const gc = expressCache()
  const bad: [string, RegExp][] = [
    ['GET /a/:id?', /route pattern "\/a\/:id\?": Unexpected \? .* — optional params are written \{\/:name\} in path-to-regexp \(Fastify's :name\? is not supported\)/],
    ['GET /r/:id(^\\d+)', /Unexpected \( .* — regexp params \(Fastify's :name\(\^\\d\+\)\) are not supported/],
    ['GET /f/*', /Missing parameter name .* — a wildcard needs a name in path-to-regexp: \*splat/],
    ['GET /x/:', /Missing parameter name/],
    ['POST /x', /only GET routes are cached .* not POST/],
    ['GET /a b', /expected "GET \/pattern"/]
  ]
  for (const [key, message] of bad) t.throws(() => gc.middleware({ routes: { [key]: true } }), { code: 'GC_INVALID_PATTERN', message }, key)
  t.throws(() => gc.middleware({ routes: { 'GET /x/:id': { groups: ['user:userId'] } } }), { code: 'GC_UNKNOWN_PARAM', message: /route GET \/x\/:id: groups: group user:userId names param "userId", which the route does not have \(it has: id\)/ })
  t.throws(() => gc.middleware({ routes: [] as never }), { code: 'GC_INVALID_OPTION', message: /option routes must be an object/ })
  t.throws(() => gc.route({ grups: [] } as never), { code: 'GC_INVALID_OPTION', message: /route Express route: unknown cache option "grups"/ })
  await gc.close()
})

t.test('route(): params are checked against the route’s pattern on its first request', async (t) => {
  const gc = expressCache()
  const app = express()
  app.get('/users/:userId', gc.route({ groups: ['user:id'] }), (_req, res) => void res.send('unreachable'))
  app.use(((err, _req, res, _next) => void res.status(500).send(err.message)) as express.ErrorRequestHandler)
  const get = await listen(t, app, gc)
  const r = await get('GET', '/users/1')
  t.equal(r.status, 500)
  t.match(r.body, /route GET \/users\/:userId: groups: group user:id names param "id", which the route does not have \(it has: userId\)/)
})

t.test('a declared bump that cannot be resolved fails the request before the handler runs', async (t) => {
  const gc = expressCache()
  const app = express()
  let ran = false
  app.post('/t', gc.route({ bumps: [() => ({ a: {} as never })] }), (_req, res) => {
    ran = true
    res.send('x')
  })
  app.use(((err, _req, res, _next) => void res.status(500).send(err.message)) as express.ErrorRequestHandler)
  const get = await listen(t, app, gc)
  const r = await get('POST', '/t')
  t.equal(r.status, 500)
  t.match(r.body, /value of "a" must be a string/)
  t.notOk(ran)
})

t.test('every way of answering is captured: send, json, end with strings and Buffers, writeHead', async (t) => {
  const gc = expressCache()
  const app = express()
  const runs: Record<string, number> = {}
  const count = (name: string) => (runs[name] = (runs[name] ?? 0) + 1)
  app.get('/send', gc.route(true), (_req, res) => void res.send(`send ${count('send')}`))
  app.get('/json', gc.route(true), (_req, res) => void res.json({ json: count('json') }))
  app.get('/buffer', gc.route(true), (_req, res) => void res.send(Buffer.from([count('buffer'), 0, 255])))
  app.get('/end', gc.route(true), (_req, res) => {
    res.setHeader('content-type', 'text/plain')
    res.end(`end ${count('end')}`)
  })
  app.get('/end-latin1', gc.route(true), (_req, res) => {
    count('latin1')
    res.setHeader('content-type', 'text/plain; charset=latin1')
    res.end('caf\u00e9', 'latin1')
  })
  app.get('/end-buffer', gc.route(true), (_req, res) => void res.end(Buffer.from(`end-buffer ${count('endBuffer')}`)))
  app.get('/write-head', gc.route(true), (_req, res) => {
    res.writeHead(200, 'Fine', { 'content-type': 'text/plain', 'x-from': 'writeHead' })
    res.end(`wh ${count('writeHead')}`)
  })
  app.get('/write-head-raw', gc.route(true), (_req, res) => {
    res.writeHead(200, ['x-raw', 'yes', 'content-type', 'text/plain'] as never)
    res.end(`raw ${count('raw')}`)
  })
  app.get('/end-null', gc.route(true), (_req, res) => {
    count('endNull')
    res.end(null)
  })
  app.get('/end-callback', gc.route(true), (_req, res) => {
    count('endCallback')
    res.end(() => {})
  })
  const get = await listen(t, app, gc)
  for (const path of ['/send', '/json', '/buffer', '/end', '/end-latin1', '/end-buffer', '/write-head', '/write-head-raw', '/end-null', '/end-callback']) {
    const miss = await get('GET', path)
    t.equal(miss.headers['cache-status'], STORED, `${path} stored`)
    const hit = await get('GET', path)
    t.match(hit.headers['cache-status'], HIT, `${path} hit`)
    t.ok(hit.raw.equals(miss.raw), `${path}: the same bytes`)
    t.equal(hit.headers['content-type'], miss.headers['content-type'])
  }
  t.equal((await get('GET', '/write-head')).headers['x-from'], 'writeHead')
  t.equal((await get('GET', '/write-head-raw')).headers['x-raw'], 'yes')
  t.equal((await get('GET', '/end-latin1')).raw.toString('latin1'), 'caf\u00e9')
  t.same(Object.values(runs), [1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
  t.equal((await get('GET', '/end-callback')).body, '', 'an empty body is an entry too')
})

t.test('streamed responses (res.write, res.sendFile) are passed through and never stored', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gc-file-'))
  writeFileSync(join(dir, 'a.txt'), 'file body')
  const gc = expressCache()
  const app = express()
  let runs = 0
  app.get('/stream', gc.route(true), (_req, res) => {
    runs++
    res.setHeader('content-type', 'text/plain')
    res.write('part 1, ')
    res.write('part 2, ')
    setTimeout(() => res.end('end'), 5)
  })
  app.get('/file', gc.route(true), (_req, res) => {
    runs++
    res.sendFile(join(dir, 'a.txt'))
  })
  const get = await listen(t, app, gc)
  for (let i = 0; i < 2; i++) {
    const s = await get('GET', '/stream')
    t.equal(s.body, 'part 1, part 2, end')
    t.equal(s.headers['cache-status'], STREAMED)
    const f = await get('GET', '/file')
    t.equal(f.body, 'file body')
    t.equal(f.headers['cache-status'], STREAMED)
  }
  t.equal(runs, 4)
})

t.test('a hit is written with writeHead/end, without Express’s send', async (t) => {
  const gc = expressCache()
  const app = express()
  let sends = 0
  const send = app.response.send
  app.response.send = function (this: express.Response, ...args: Parameters<typeof send>) {
    sends++
    return send.apply(this, args)
  } as typeof send
  app.get('/x', gc.route(true), (_req, res) => void res.send('x'))
  const get = await listen(t, app, gc)
  await get('GET', '/x')
  t.equal(sends, 1)
  t.match((await get('GET', '/x')).headers['cache-status'], HIT)
  t.match((await get('GET', '/x')).headers['cache-status'], HIT)
  t.equal(sends, 1, 'hits did not call res.send')
})

t.test('bumps: applied before the response, at once after it started, and routes mounted on routers', async (t) => {
  const gc = expressCache()
  const app = express()
  app.use(gc.middleware())
  const router = express.Router()
  let v = 0
  router.get('/items/:id', gc.route({ groups: ['item:id'] }), (req, res) => void res.send(`item ${req.params.id} v${v}`))
  router.put('/items/:id', (_req, res) => {
    v++
    res.bumpGroup('item:id').send('ok')
  })
  router.put('/late/:id', (_req, res) => {
    v++
    res.write('started ')
    res.bumpGroup('item:id')
    res.end('then bumped')
  })
  router.put('/after/:id', (_req, res) => {
    v++
    res.send('sent')
    res.bumpGroup('item:id')
  })
  app.use('/api', router)
  app.get('/plain', (_req, res) => void res.bumpGroup('plain', {}).bumpGroup('plain2', {}).send('two bumps'))
  const get = await listen(t, app, gc)
  t.equal((await get('GET', '/api/items/1')).headers['cache-status'], STORED)
  await get('PUT', '/api/items/1')
  t.equal((await get('GET', '/api/items/1')).body, 'item 1 v1', 'read your writes')
  await gc.bumpRoute('/api/items/:id')
  t.equal((await get('GET', '/api/items/1')).headers['cache-status'], STORED, 'the route pattern includes the router’s mount path')
  t.equal((await get('PUT', '/api/late/1')).body, 'started then bumped')
  t.equal((await get('PUT', '/api/after/1')).body, 'sent')
  const bumps = gc.stats().bumps
  t.ok(bumps >= 3)
  await get('GET', '/plain')
  t.equal(gc.stats().bumps, bumps + 2)
})

t.test('a cached route answering another method bypasses the cache', async (t) => {
  const gc = expressCache()
  const app = express()
  app.all('/any', gc.route(true), (_req, res) => void res.send('any'))
  const get = await listen(t, app, gc)
  t.equal((await get('DELETE', '/any')).headers['cache-status'], 'groupcache; fwd=bypass; detail=method')
  t.equal((await get('GET', '/any')).headers['cache-status'], STORED)
})

t.test('route() on an array of paths uses the matched params; used outside a route it says where it goes', async (t) => {
  const gc = expressCache()
  const app = express()
  let runs = 0
  app.get(['/a/:id', '/b/:id'], gc.route({ groups: ['x:id'] }), (req, res) => void res.send(`${req.params.id} ${++runs}`))
  app.use('/mounted', gc.route(true))
  app.use(((err, _req, res, _next) => void res.status(500).send(err.message)) as express.ErrorRequestHandler)
  const get = await listen(t, app, gc)
  await get('GET', '/a/1')
  t.match((await get('GET', '/a/1')).headers['cache-status'], HIT)
  await gc.bump('x:id', { id: 1 })
  t.equal((await get('GET', '/a/1')).body, '1 2')
  const misuse = await get('GET', '/mounted')
  t.equal(misuse.status, 500)
  t.match(misuse.body, /gc.route\(\) goes on a route: app.get\(path, gc.route\(options\), handler\)/)
})

t.test('bumps carry readable group names: res.bumpGroup, declared bumps, and one after the response started', async (t) => {
  const gc = expressCache()
  const app = express()
  app.use(gc.middleware())
  const seen: string[] = []
  gc.cache.onBump(({ groups }) => void seen.push(...groups))
  app.put('/users/:userId', gc.route({ bumps: ['user:userId', 'users'] }), (_req, res) => void res.send('ok'))
  app.post('/posts/:postId', (_req, res) => {
    res.bumpGroup('post:postId').send('ok')
    res.bumpGroup({ feed: 'postId' })
  })
  const get = await listen(t, app, gc)
  await get('PUT', '/users/7')
  await get('POST', '/posts/9')
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(seen.sort(), ['feed=9', 'post:9', 'user:7', 'users'].sort())
})

t.test('a writeHead listener that throws while the store decision runs: served, not stored, logged', async (t) => {
  const warnings: unknown[] = []
  const gc = expressCache({ logger: { warn: (...args: unknown[]) => void warnings.push(args), error() {} } })
  const app = express()
  let runs = 0
  app.use((_req, res, next) => {
    // An on-headers style wrapper whose listener fails the first time it runs.
    const writeHead = res.writeHead
    let fired = false
    res.writeHead = function (this: express.Response, ...args: unknown[]) {
      if (!fired) {
        fired = true
        throw new Error('listener failed')
      }
      return (writeHead as (...a: unknown[]) => express.Response).apply(this, args)
    } as typeof res.writeHead
    next()
  })
  app.get('/x', gc.route(true), (_req, res) => void res.send(`x ${++runs}`))
  const get = await listen(t, app, gc)
  const first = await get('GET', '/x')
  t.equal(first.status, 200)
  t.equal(first.body, 'x 1')
  t.equal(warnings.length, 1)
  t.match(JSON.stringify(warnings[0]), /a writeHead listener failed/)
  t.equal((await get('GET', '/x')).body, 'x 2', 'nothing was stored')
})
