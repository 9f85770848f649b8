import express from 'express'
import t from 'tap'
import { expressCache } from '../lib/express.js'
import { HIT, listenExpress, STORED } from './helpers/express-stack.js'

const quiet = { logger: { warn() {}, error() {} } }

t.test('trust proxy: tenants behind the proxy (X-Forwarded-Host) never share entries', async (t) => {
  for (const where of ['route', 'table'] as const) {
    await t.test(where, async (t) => {
      const gc = expressCache(quiet)
      const app = express()
      app.set('trust proxy', 'loopback')
      if (where === 'table') app.use(gc.middleware({ routes: { 'GET /home': true } }))
      const cache = where === 'route' ? [gc.route(true)] : []
      app.get('/home', ...cache, (req, res) => void res.send(`home of ${req.host}`))
      const get = await listenExpress(t, app, gc)
      const a = await get('GET', '/home', { 'x-forwarded-host': 'a.example.com' })
      t.equal(a.body, 'home of a.example.com')
      const b = await get('GET', '/home', { 'x-forwarded-host': 'b.example.com' })
      t.equal(b.body, 'home of b.example.com', 'tenant b never gets tenant a’s page')
      const a2 = await get('GET', '/home', { 'x-forwarded-host': 'A.Example.com' })
      t.match(a2.headers['cache-status'], HIT, 'the host is lower-cased')
      t.equal(a2.body, 'home of a.example.com')
    })
  }
})

t.test('without trust proxy, X-Forwarded-Host is not what the handler sees, and splits nothing', async (t) => {
  const gc = expressCache(quiet)
  const app = express()
  app.get('/home', gc.route(true), (req, res) => void res.send(`home of ${req.hostname}`))
  const get = await listenExpress(t, app, gc)
  const a = await get('GET', '/home', { 'x-forwarded-host': 'a.example.com' })
  const b = await get('GET', '/home', { 'x-forwarded-host': 'b.example.com' })
  t.match(b.headers['cache-status'], HIT)
  t.equal(b.body, a.body)
})

t.test('query: the cache answers with what the handler computes for the query as parsed (malformed percent-encoding)', async (t) => {
  for (const parser of ['simple', 'extended'] as const) {
    await t.test(parser, async (t) => {
      const gc = expressCache(quiet)
      const app = express()
      app.set('query parser', parser)
      app.get('/search', gc.route(true), (req, res) => void res.json(req.query))
      app.get('/uncached', (req, res) => void res.json(req.query))
      const get = await listenExpress(t, app, gc)
      const queries = ['?q=%zz+a', '?q=%25zz%2Ba', '?q=%e9', '?q=%25e9', '?q=%C3%A9', '?q=%c3%a9', '?a=1&a=2', '?a=2&a=1', '?a[b]=1', '?a%5Bb%5D=1', '?a=%5Bb%5D']
      let distinct = 0
      for (let round = 0; round < 2; round++) {
        for (const query of queries) {
          const cached = await get('GET', `/search${query}`)
          const truth = await get('GET', `/uncached${query}`)
          t.equal(cached.body, truth.body, `${query} (round ${round})`)
          if (round === 0 && cached.headers['cache-status'] === STORED) distinct++
        }
      }
      t.ok(distinct >= 7, `${distinct} distinct entries`)
      if (parser === 'simple') {
        const one = await get('GET', '/search?q=%zz+a')
        const two = await get('GET', '/search?q=%25zz%2Ba')
        t.not(one.body, two.body, '?q=%zz+a and ?q=%25zz%2Ba are two queries to the handler')
      }
      await get('GET', '/search?b=2&a=1')
      const same = await get('GET', '/search?a=1&b=2')
      t.match(same.headers['cache-status'], HIT, 'the same params in another order are the same query')
    })
  }
})

t.test('auth mounted before the cache: hits only reach authorised requests', async (t) => {
  for (const where of ['route', 'table'] as const) {
    await t.test(where, async (t) => {
      const gc = expressCache(quiet)
      const app = express()
      app.use((req, res, next) => {
        if (req.headers['x-api-key'] !== 'secret') return void res.status(401).send('who are you?')
        next()
      })
      if (where === 'table') app.use(gc.middleware({ routes: { 'GET /members': true } }))
      const cache = where === 'route' ? [gc.route(true)] : []
      let runs = 0
      app.get('/members', ...cache, (_req, res) => void res.send(`members only ${++runs}`))
      const get = await listenExpress(t, app, gc)
      t.equal((await get('GET', '/members', { 'x-api-key': 'secret' })).headers['cache-status'], STORED)
      const anonymous = await get('GET', '/members')
      t.equal(anonymous.status, 401)
      t.equal(anonymous.body, 'who are you?')
      const wrong = await get('GET', '/members', { 'x-api-key': 'guess' })
      t.equal(wrong.status, 401)
      const member = await get('GET', '/members', { 'x-api-key': 'secret' })
      t.match(member.headers['cache-status'], HIT)
      t.equal(member.body, 'members only 1')
    })
  }
})
