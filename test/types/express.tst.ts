import express, { type RequestHandler, type Response } from 'express'
import { describe, expect, test } from 'tstyche'
import { expressCache, type ExpressCache } from '../../lib/express.js'
import { MemoryStore } from '../../lib/index.js'

const gc = expressCache({ ttl: 60, store: new MemoryStore() })
const app = express()

describe('expressCache', () => {
  test('has the shared API, close, middleware and route', () => {
    expect(gc).type.toBe<ExpressCache>()
    expect(gc.middleware()).type.toBe<RequestHandler>()
    expect(gc.middleware({ routes: { 'GET /users/:userId': { groups: ['user:userId'] }, 'GET /about': true } })).type.toBe<RequestHandler>()
    expect(gc.route({ groups: ['user:userId'], ttl: 30 })).type.toBe<RequestHandler>()
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
