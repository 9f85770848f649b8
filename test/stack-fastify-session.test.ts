import cookie from '@fastify/cookie'
import session from '@fastify/session'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import t from 'tap'
import groupcache from '../lib/index.js'

declare module 'fastify' {
  interface Session {
    user?: string
  }
}

const SECRET = 'a session secret of at least thirty-two characters'

type Order = 'session before groupcache' | 'session after groupcache'

async function build(order: Order, saveUninitialized: boolean): Promise<FastifyInstance> {
  const app = Fastify()
  const sessions = async () => {
    await app.register(cookie)
    await app.register(session, { secret: SECRET, cookie: { secure: false }, saveUninitialized })
  }
  if (order === 'session before groupcache') await sessions()
  await app.register(groupcache)
  if (order === 'session after groupcache') await sessions()
  app.post('/login/:user', async (request) => {
    request.session.user = (request.params as { user: string }).user
    return 'logged in'
  })
  // A page that reads the session declares it: its key varies on the Cookie header.
  app.get('/greeting', { config: { cache: { vary: ['cookie'] } } }, async (request) => `hello ${request.session.user ?? 'guest'}`)
  // A page that does not declare it (its body does not depend on who asks): the session
  // cookie its responses set (rolling sessions) keeps those responses out of the cache.
  app.get('/public', { config: { cache: true } }, async () => 'the same page for everyone')
  return app
}

/** The session cookie a response sets, as `name=value`. */
function sessionCookie(r: LightMyRequestResponse): string | undefined {
  const set = r.headers['set-cookie']
  const first = Array.isArray(set) ? set[0] : set
  return first?.split(';')[0]
}

for (const order of ['session before groupcache', 'session after groupcache'] as const) {
  t.test(`@fastify/session (${order}): no client ever gets another's cookie or page`, async (t) => {
    const app = await build(order, false)
    t.teardown(() => app.close())
    const clients: Record<string, { cookie?: string }> = { alice: {}, bob: {}, guest: {} }
    for (const user of ['alice', 'bob']) {
      const login = await app.inject({ method: 'POST', url: `/login/${user}` })
      ;(clients[user] as { cookie?: string }).cookie = sessionCookie(login)
      t.ok(clients[user]?.cookie, `${user} has a session`)
    }
    t.not(clients.alice?.cookie, clients.bob?.cookie)
    const seen: string[] = []
    for (let round = 0; round < 4; round++) {
      for (const [user, client] of Object.entries(clients)) {
        for (const url of ['/greeting', '/public']) {
          const r = await app.inject({ url, headers: client.cookie === undefined ? {} : { cookie: client.cookie } })
          seen.push(String(r.headers['cache-status']))
          if (url === '/greeting') t.equal(r.body, `hello ${user}`, `${user} gets ${user}'s greeting`)
          const set = sessionCookie(r)
          if (set !== undefined) t.equal(set, client.cookie, `${url}: ${user} only ever gets their own session cookie`)
        }
      }
    }
    t.ok(seen.some((s) => /hit/.test(s)), 'pages are still served from the cache')
    t.ok(seen.includes('groupcache; fwd=miss; detail=set-cookie'), 'a response setting the session cookie is never stored')
  })

  t.test(`@fastify/session with saveUninitialized (${order}): each new visitor gets a fresh session, never a stored one`, async (t) => {
    const app = await build(order, true)
    t.teardown(() => app.close())
    const cookies = new Set<string>()
    for (let i = 0; i < 4; i++) {
      const r = await app.inject('/public')
      t.equal(r.headers['cache-status'], 'groupcache; fwd=miss; detail=set-cookie')
      const set = sessionCookie(r)
      t.ok(set)
      cookies.add(set as string)
    }
    t.equal(cookies.size, 4, 'four visitors, four sessions')
  })
}
