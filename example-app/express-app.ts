import express, { type Express } from 'express'
import { expressCache, type ExpressCache } from '../lib/express.js'
import type { Store } from '../lib/index.js'
import { Blog, feedGroup, tenantOf } from './blog.js'
import { cacheMetrics, type CacheMetrics } from './metrics.js'

/** The same blog on Express: the same groups, bumps and HTTP behaviour as app.ts. */
export function buildExpressApp(options: { store?: Store } = {}): { app: Express; gc: ExpressCache; metrics: CacheMetrics } {
  const blog = new Blog()
  const gc = expressCache({ ttl: 60, ...(options.store ? { store: options.store } : {}) })
  const app = express()
  app.use(express.json())
  app.use(gc.middleware())
  const notFound = (res: express.Response, what: string) => void res.status(404).json({ error: `no such ${what}` })

  app.get('/users/:userId', gc.route({ groups: ['user:userId'] }), (req, res) => {
    const user = blog.users.get(req.params.userId as string)
    return user ? void res.json(user) : notFound(res, 'user')
  })
  app.put('/users/:userId', (req, res) => {
    const user = blog.renameUser(req.params.userId, req.body?.name)
    if (!user) return notFound(res, 'user')
    res.bumpGroup('user:userId').json(user)
  })
  app.get('/posts', gc.route({ group: 'posts' }), (_req, res) => void res.json(blog.posts))
  app.get('/users/:userId/posts', gc.route({ groups: ['user:userId', 'posts'], ttl: 30 }), (req, res) => void res.json(blog.postsBy(req.params.userId as string)))
  app.post('/posts', gc.route({ bumps: ['posts'] }), (req, res) => void res.status(201).json(blog.addPost(req.body ?? {})))
  app.get('/blogs/:blogId/posts/:postId', gc.route({ groups: [['blogId', 'postId']] }), (req, res) => {
    const post = blog.post(req.params.blogId as string, req.params.postId as string)
    return post ? void res.json(post) : notFound(res, 'post')
  })
  app.get('/blogs/:blogId/comments', gc.route({ group: { blog: 'blogId' } }), (req, res) => void res.json(blog.commentsOn(req.params.blogId as string)))
  app.post('/blogs/:blogId/comments', gc.route({ bumps: [{ blog: 'blogId' }] }), (req, res) => void res.status(201).json(blog.addComment(req.params.blogId as string, req.body?.text)))
  app.get('/feed', gc.route({ group: feedGroup }), (req, res) => void res.json({ tenant: tenantOf(req), posts: blog.posts.length }))
  app.post('/feed/:tenant/refresh', async (req, res) => {
    await gc.bump({ feed: 'tenant' }, req.params)
    res.json({ refreshed: req.params.tenant })
  })
  app.get('/about', gc.route({ ttl: 300 }), (_req, res) => void res.json({ app: 'groupcache example blog', at: new Date().toISOString() }))
  app.post('/admin/clear', async (_req, res) => void res.json({ cleared: await gc.clear() }))
  app.get('/admin/stats', (_req, res) => void res.json(gc.stats()))

  // Prometheus metrics, built only from groupcache's diagnostics channels; close() unsubscribes.
  const metrics = cacheMetrics()
  app.get('/metrics', async (_req, res) => void res.type(metrics.registry.contentType).send(await metrics.text()))
  return { app, gc, metrics }
}
