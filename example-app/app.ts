import Fastify, { type FastifyInstance } from 'fastify'
import groupcache, { type Store } from '../lib/index.js'

interface User { id: string; name: string }
interface Post { id: string; blogId: string; authorId: string; title: string }
interface Comment { blogId: string; text: string }

/** A blog on an in-memory "database", cached by groupcache. Every group form appears once. */
export async function buildApp(options: { store?: Store; logger?: boolean } = {}): Promise<FastifyInstance> {
  const db = {
    users: new Map<string, User>([['1', { id: '1', name: 'Ada' }], ['2', { id: '2', name: 'Grace' }]]),
    posts: [{ id: '1', blogId: '7', authorId: '1', title: 'Generations' }] as Post[],
    comments: [] as Comment[]
  }
  const app = Fastify({ logger: options.logger ?? false })
  await app.register(groupcache, { ttl: 60, ...(options.store ? { store: options.store } : {}) })

  // Name with a value param: one group per user.
  app.get<{ Params: { userId: string } }>('/users/:userId', { config: { cache: { groups: ['user:userId'] } } }, async (request, reply) => {
    const user = db.users.get(request.params.userId)
    return user ?? reply.code(404).send({ error: 'no such user' })
  })

  // A mutation that bumps by hand, before the response is written.
  app.put<{ Params: { userId: string }; Body: { name?: string } }>('/users/:userId', async (request, reply) => {
    const user = db.users.get(request.params.userId)
    if (!user) return reply.code(404).send({ error: 'no such user' })
    user.name = request.body?.name ?? user.name
    reply.bumpGroup('user:userId')
    return user
  })

  // A plain name: one group for every list of posts.
  app.get('/posts', { config: { cache: { group: 'posts' } } }, async () => db.posts)

  // Two groups: this user's profile and the posts.
  app.get<{ Params: { userId: string } }>('/users/:userId/posts', { config: { cache: { groups: ['user:userId', 'posts'], ttl: 30 } } }, async (request) =>
    db.posts.filter((p) => p.authorId === request.params.userId)
  )

  // A declarative bump: creating a post orphans every cached list of posts.
  app.post<{ Body: { blogId?: string; authorId?: string; title?: string } }>('/posts', { config: { cache: { bumps: ['posts'] } } }, async (request, reply) => {
    const post = { id: String(db.posts.length + 1), blogId: request.body?.blogId ?? '7', authorId: request.body?.authorId ?? '1', title: request.body?.title ?? 'Untitled' }
    db.posts.push(post)
    return reply.code(201).send(post)
  })

  // A list of params: one group per (blogId, postId).
  app.get<{ Params: { blogId: string; postId: string } }>('/blogs/:blogId/posts/:postId', { config: { cache: { groups: [['blogId', 'postId']] } } }, async (request, reply) => {
    const post = db.posts.find((p) => p.blogId === request.params.blogId && p.id === request.params.postId)
    return post ?? reply.code(404).send({ error: 'no such post' })
  })

  // A remap: the group { blog: <blogId> }, shared with the comment route's bump below.
  app.get<{ Params: { blogId: string } }>('/blogs/:blogId/comments', { config: { cache: { group: { blog: 'blogId' } } } }, async (request) =>
    db.comments.filter((c) => c.blogId === request.params.blogId)
  )
  app.post<{ Params: { blogId: string }; Body: { text?: string } }>('/blogs/:blogId/comments', { config: { cache: { bumps: [{ blog: 'blogId' }] } } }, async (request, reply) => {
    const comment = { blogId: request.params.blogId, text: request.body?.text ?? '' }
    db.comments.push(comment)
    return reply.code(201).send(comment)
  })

  // A function: the group comes from a request header (one group per tenant).
  app.get('/feed', { config: { cache: { group: (_params, request: { headers: Record<string, string | undefined> }) => ({ feed: request.headers['x-tenant'] ?? 'public' }) } } }, async (request) => ({
    tenant: request.headers['x-tenant'] ?? 'public',
    posts: db.posts.length
  }))
  app.post<{ Params: { tenant: string } }>('/feed/:tenant/refresh', async (request) => {
    await app.groupcache.bump(() => ({ feed: request.params.tenant }))
    return { refreshed: request.params.tenant }
  })

  // No groups: the view group { route, ...params }; bumpRoute() reaches it.
  app.get('/about', { config: { cache: { ttl: 300 } } }, async () => ({ app: 'groupcache example blog', at: new Date().toISOString() }))

  app.post('/admin/clear', async () => ({ cleared: await app.groupcache.clear() }))
  app.get('/admin/stats', async () => app.groupcache.stats())
  return app
}
