import Fastify, { type FastifyInstance } from 'fastify'
import groupcache, { type FastifyGroupcacheOptions, type Store } from '../lib/index.js'
import { Blog, feedGroup, tenantOf, type Post } from './blog.js'
import { cacheMetrics } from './metrics.js'

/**
 * The blog on Fastify, cached by groupcache. Every group form appears once.
 * `cache` adds plugin options (behind a CDN: `cdn`, `purgers`).
 */
export async function buildApp(options: { store?: Store; logger?: boolean; cache?: FastifyGroupcacheOptions } = {}): Promise<FastifyInstance> {
  const blog = new Blog()
  const app = Fastify({ logger: options.logger ?? false })
  await app.register(groupcache, { ttl: 60, ...(options.store ? { store: options.store } : {}), ...options.cache })
  type Id = { Params: { userId: string } }

  // Name with a value param: one group per user.
  app.get<Id>('/users/:userId', { config: { cache: { groups: ['user:userId'] } } }, async (request, reply) =>
    blog.users.get(request.params.userId) ?? reply.code(404).send({ error: 'no such user' })
  )

  // A mutation that bumps by hand; the bump lands before the response is written.
  app.put<Id & { Body: { name?: string } }>('/users/:userId', async (request, reply) => {
    const user = blog.renameUser(request.params.userId, request.body?.name)
    if (!user) return reply.code(404).send({ error: 'no such user' })
    reply.bumpGroup('user:userId')
    return user
  })

  // A plain name: one group for every list of posts.
  app.get('/posts', { config: { cache: { group: 'posts' } } }, async () => blog.posts)

  // Two groups: this user and the posts.
  app.get<Id>('/users/:userId/posts', { config: { cache: { groups: ['user:userId', 'posts'], ttl: 30 } } }, async (request) => blog.postsBy(request.params.userId))

  // A declarative bump: creating a post orphans every cached list of posts.
  app.post<{ Body: Partial<Post> }>('/posts', { config: { cache: { bumps: ['posts'] } } }, async (request, reply) => reply.code(201).send(blog.addPost(request.body ?? {})))

  // A list of params: one group per (blogId, postId).
  app.get<{ Params: { blogId: string; postId: string } }>('/blogs/:blogId/posts/:postId', { config: { cache: { groups: [['blogId', 'postId']] } } }, async (request, reply) =>
    blog.post(request.params.blogId, request.params.postId) ?? reply.code(404).send({ error: 'no such post' })
  )

  // A remap: the group { blog: <blogId> }, which the comment route below bumps.
  type Blog_ = { Params: { blogId: string } }
  app.get<Blog_>('/blogs/:blogId/comments', { config: { cache: { group: { blog: 'blogId' } } } }, async (request) => blog.commentsOn(request.params.blogId))
  app.post<Blog_ & { Body: { text?: string } }>('/blogs/:blogId/comments', { config: { cache: { bumps: [{ blog: 'blogId' }] } } }, async (request, reply) =>
    reply.code(201).send(blog.addComment(request.params.blogId, request.body?.text))
  )

  // A function: the group comes from a request header (one group per tenant).
  app.get('/feed', { config: { cache: { group: feedGroup } } }, async (request) => ({ tenant: tenantOf(request), posts: blog.posts.length }))
  app.post<{ Params: { tenant: string } }>('/feed/:tenant/refresh', async (request) => {
    await app.groupcache.bump({ feed: 'tenant' }, request.params)
    return { refreshed: request.params.tenant }
  })

  // No groups: the view group { route, ...params }; bumpRoute() reaches it.
  app.get('/about', { config: { cache: { ttl: 300 } } }, async () => ({ app: 'groupcache example blog', at: new Date().toISOString() }))

  app.post('/admin/clear', async () => ({ cleared: await app.groupcache.clear() }))
  app.get('/admin/stats', async () => app.groupcache.stats())

  // Prometheus metrics, built only from groupcache's diagnostics channels.
  const metrics = cacheMetrics()
  app.addHook('onClose', async () => metrics.close())
  app.get('/metrics', async (_request, reply) => reply.type(metrics.registry.contentType).send(await metrics.text()))
  return app
}
