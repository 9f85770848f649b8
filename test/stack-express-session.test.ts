import { gunzipSync } from 'node:zlib'
import compression from 'compression'
import express from 'express'
import session from 'express-session'
import t from 'tap'
import { expressCache } from '../lib/express.js'
import { cookieOf, HIT, listenExpress, STORED } from './helpers/express-stack.js'

type Order = 'session, then gc.route()' | 'gc table, then session'
const ORDERS: Order[] = ['session, then gc.route()', 'gc table, then session']

function sessionApp(options: Partial<session.SessionOptions> = {}, order: Order = ORDERS[0] as Order) {
  const gc = expressCache({ logger: { warn() {}, error() {} } })
  const app = express()
  if (order === 'gc table, then session') app.use(gc.middleware({ routes: { 'GET /me': true, 'GET /public': true } }))
  app.use(session({ secret: 'test secret', resave: false, saveUninitialized: false, ...options }))
  const cache = order === 'gc table, then session' ? [] : [gc.route(true)]
  let runs = 0
  // Personal: the body names the session, and the session is saved, so express-session sets its cookie at writeHead.
  app.get('/me', ...cache, (req, res) => {
    runs++
    const s = req.session as session.Session & { visits?: number }
    s.visits = (s.visits ?? 0) + 1
    res.send(`session ${req.sessionID} visit ${s.visits}`)
  })
  // Does not touch the session: no cookie, nothing personal, cacheable.
  app.get('/public', ...cache, (_req, res) => {
    runs++
    res.send('the same for everyone')
  })
  return { gc, app, runs: () => runs }
}

for (const order of ORDERS) t.test(`express-session (${order}): a cookie added at writeHead time means not stored and not shared`, async (t) => {
  const { gc, app } = sessionApp({}, order)
  const get = await listenExpress(t, app, gc)
  const a = await get('GET', '/me')
  const aCookie = cookieOf(a)
  t.ok(aCookie, 'client A got a session cookie')
  t.not(a.headers['cache-status'], STORED, 'a response with Set-Cookie is not stored')
  t.match(a.headers['cache-status'], /^groupcache; fwd=miss/)
  const b = await get('GET', '/me')
  t.not(cookieOf(b), aCookie, "client B never receives client A's cookie")
  t.notMatch(b.body, a.body.split(' ')[1] as string, "client B never receives client A's body")
  t.match(b.body, /visit 1$/)
  const a2 = await get('GET', '/me', { cookie: aCookie as string })
  t.match(a2.body, /visit 2$/, 'client A still has its own session')
  t.equal(a2.body.split(' ')[1], a.body.split(' ')[1])
})

t.test('express-session: coalesced followers never get a response that set a cookie', async (t) => {
  const gc = expressCache({ logger: { warn() {}, error() {} } })
  const app = express()
  app.use(session({ secret: 'test secret', resave: false, saveUninitialized: false }))
  let release!: () => void
  const gate = new Promise<void>((resolve) => (release = resolve))
  let runs = 0
  app.get('/slow', gc.route(true), async (req, res) => {
    runs++
    await gate
    ;(req.session as session.Session & { n?: number }).n = runs
    res.send(`session ${req.sessionID}`)
  })
  const get = await listenExpress(t, app, gc)
  const first = get('GET', '/slow')
  while (runs === 0) await new Promise((r) => setTimeout(r, 2))
  const second = get('GET', '/slow')
  await new Promise((r) => setTimeout(r, 20))
  release()
  const [a, b] = await Promise.all([first, second])
  t.ok(cookieOf(a))
  t.not(b.body, a.body, 'the follower ran its own handler')
  t.not(cookieOf(b), cookieOf(a))
  t.equal(runs, 2)
})

for (const order of ORDERS) t.test(`express-session (${order}): responses that leave the session alone are cached and shared`, async (t) => {
  const { gc, app, runs } = sessionApp({}, order)
  const get = await listenExpress(t, app, gc)
  t.equal((await get('GET', '/public')).headers['cache-status'], STORED)
  const a = await get('GET', '/me')
  const hit = await get('GET', '/public', { cookie: cookieOf(a) as string })
  t.match(hit.headers['cache-status'], HIT)
  t.equal(hit.headers['set-cookie'], undefined)
  t.equal(hit.body, 'the same for everyone')
  t.equal(runs(), 2)
})

for (const order of ORDERS) t.test(`express-session with rolling cookies (${order}): every response sets a cookie, none is stored`, async (t) => {
  const { gc, app } = sessionApp({ rolling: true, cookie: { maxAge: 60_000 } }, order)
  const get = await listenExpress(t, app, gc)
  const a = await get('GET', '/me')
  const cookie = cookieOf(a) as string
  const again = await get('GET', '/public', { cookie })
  t.ok(cookieOf(again), 'the rolling cookie is refreshed')
  t.not(again.headers['cache-status'], STORED)
  const other = await get('GET', '/public')
  t.equal(other.headers['set-cookie'], undefined, "a client without a session never gets another client's cookie")
})

t.test('express-session behind compression: personal pages never shared, public ones cached compressed', async (t) => {
  const gc = expressCache({ logger: { warn() {}, error() {} } })
  const app = express()
  app.use(compression({ threshold: 0 }))
  app.use(session({ secret: 'test secret', resave: false, saveUninitialized: false }))
  app.get('/me', gc.route(true), (req, res) => {
    ;(req.session as session.Session & { seen?: boolean }).seen = true
    res.type('text').send(`private page of ${req.sessionID}`)
  })
  app.get('/public', gc.route(true), (_req, res) => void res.type('text').send('public page'))
  const get = await listenExpress(t, app, gc)
  const gzip = { 'accept-encoding': 'gzip' }
  const pages = new Set<string>()
  for (let i = 0; i < 3; i++) {
    const r = await get('GET', '/me', gzip)
    t.ok(cookieOf(r))
    t.match(r.headers['cache-status'], /detail=(vary|set-cookie)/)
    pages.add(gunzipSync(r.raw).toString())
  }
  t.equal(pages.size, 3, 'three clients, three personal pages')
  const statuses: string[] = []
  for (let i = 0; i < 3; i++) {
    const r = await get('GET', '/public', gzip)
    t.equal(gunzipSync(r.raw).toString(), 'public page')
    t.equal(r.headers['set-cookie'], undefined)
    statuses.push(String(r.headers['cache-status']))
  }
  t.equal(statuses[1], STORED)
  t.match(statuses[2], HIT)
})
