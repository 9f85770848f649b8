import express, { type RequestHandler, type Response } from 'express'
import { describe, expect, test } from 'tstyche'
import { expressCache, type ExpressCache, type RouteMiddleware } from '../../lib/express.js'
import { MemoryStore } from '../../lib/index.js'

const gc = expressCache({ ttl: 60, store: new MemoryStore() })
const app = express()

describe('expressCache', () => {
  test('has the shared API, close, middleware and route', () => {
    expect(gc).type.toBe<ExpressCache>()
    expect(gc.middleware()).type.toBe<RequestHandler>()
    expect(gc.middleware({ routes: { 'GET /users/:userId': { groups: ['user:userId'] }, 'GET /about': true } })).type.toBe<RequestHandler>()
    expect(gc.route({ groups: ['user:userId'], ttl: 30 })).type.toBe<RouteMiddleware>()
    expect(gc.route(true)).type.toBeAssignableTo<RequestHandler>()
    expect(gc.route(true)).type.toBeAssignableTo<RequestHandler<{ userId: string }>>()
    expect(gc.bump('posts')).type.toBe<Promise<boolean>>()
    expect(gc.close()).type.toBe<Promise<void>>()
  })

  test('options of the wrong type are compile errors', () => {
    expect(expressCache).type.not.toBeCallableWith({ ttl: '60' })
    expect(gc.route).type.not.toBeCallableWith({ ttl: '60' })
    expect(gc.route).type.not.toBeCallableWith({ groups: 'posts' })
    expect(gc.middleware).type.not.toBeCallableWith({ routes: { 'GET /x': { vary: 'accept' } } })
  })
})

describe('res.bumpGroup', () => {
  test('is on every Express response and returns the same response type', () => {
    app.put('/users/:userId', (_req, res: Response<{ ok: boolean }>) => {
      const bumped = res.bumpGroup('user:userId')
      expect(bumped).type.toBe<Response<{ ok: boolean }>>()
      expect(bumped.json).type.toBeCallableWith({ ok: true })
      expect(bumped.json).type.not.toBeCallableWith({ ok: 'yes' })
      bumped.json({ ok: true })
    })
  })

  test('takes a group definition and optional values', () => {
    app.post('/posts', (_req, res) => {
      expect(res.bumpGroup).type.toBeCallableWith('posts')
      expect(res.bumpGroup).type.toBeCallableWith({ id: 'userId' }, { userId: 7 })
      expect(res.bumpGroup).type.not.toBeCallableWith(7)
      res.end()
    })
  })
})

describe('gc.route() keeps the params Express infers from the path', () => {
  const useString = (value: string): string => value

  test('app.get: a handler after it reads its params as strings', () => {
    app.get('/users/:userId', gc.route({ groups: ['user:userId'] }), async (req, res) => {
      expect(req.params.userId).type.toBe<string>()
      expect(useString).type.toBeCallableWith(req.params.userId)
      res.send(useString(req.params.userId))
    })
    app.get('/users/:userId/posts/:postId{/:page}', gc.route(true), (req) => {
      expect(req.params.postId).type.toBe<string>()
      expect(req.params.page).type.toBe<string | undefined>()
    })
  })

  test('with middleware before it, and a typed response', () => {
    app.get(
      '/users/:userId',
      (req, _res, next) => {
        expect(req.params.userId).type.toBe<string>()
        next()
      },
      gc.route({ groups: ['user:userId'] }),
      (req, res: Response<{ id: string }>) => {
        expect(req.params.userId).type.toBe<string>()
        res.json({ id: req.params.userId })
      }
    )
  })

  test('on a Router and app.route()', () => {
    const router = express.Router()
    router.get('/users/:userId', gc.route(true), (req) => {
      expect(req.params.userId).type.toBe<string>()
    })
    app.route('/users/:userId').get(gc.route(true), (req) => {
      expect(req.params.userId).type.toBe<string>()
    })
  })

  test('a param the path does not have is an error', () => {
    app.get('/users/:userId', gc.route(true), (req) => {
      // @ts-expect-error Property 'id' does not exist
      useString(req.params.id)
    })
  })
})
