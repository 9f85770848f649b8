import Fastify, { type FastifyReply } from 'fastify'
import { describe, expect, test } from 'tstyche'
import groupcache, { MemoryStore, type GroupcacheDecorator, type RouteCacheOptions } from '../../lib/index.js'

const app = Fastify()
await app.register(groupcache, { ttl: 60, store: new MemoryStore() })

describe('declaration merging into fastify', () => {
  test('config.cache takes true or the route options', () => {
    expect(app.get).type.toBeCallableWith('/posts', { config: { cache: true } }, async () => 'ok')
    expect(app.get).type.toBeCallableWith('/users/:userId', { config: { cache: { groups: ['user:userId', ['blogId', 'userId']], ttl: 30, vary: ['accept-language'] } } }, async () => 'ok')
    expect(app.post).type.toBeCallableWith('/posts', { config: { cache: { bumps: ['posts'] } } }, async () => 'ok')
    expect<NonNullable<Parameters<typeof app.get>[1]['config']>['cache']>().type.toBe<boolean | RouteCacheOptions | undefined>()
  })

  // A misspelt option name (`grups`) compiles: Fastify infers the route's
  // ContextConfig from the literal and intersects it with config. It is a
  // GC_INVALID_OPTION error at registration instead.
  test('a route option of the wrong type is a compile error', () => {
    expect(app.get).type.not.toBeCallableWith('/posts', { config: { cache: { ttl: '60' } } }, async () => 'ok')
    expect(app.get).type.not.toBeCallableWith('/posts', { config: { cache: { group: 42 } } }, async () => 'ok')
    expect(app.get).type.not.toBeCallableWith('/posts', { config: { cache: { vary: 'accept' } } }, async () => 'ok')
  })

  test('app.groupcache is the decorator', () => {
    expect(app.groupcache).type.toBe<GroupcacheDecorator>()
    expect(app.groupcache.bump('user:userId', { userId: 42 })).type.toBe<Promise<boolean>>()
    expect(app.groupcache.bumpRoute('/users/:userId')).type.toBe<Promise<boolean>>()
    expect(app.groupcache.clear()).type.toBe<Promise<boolean>>()
  })

  test('plugin options are checked', () => {
    expect(app.register).type.not.toBeCallableWith(groupcache, { ttl: '60' })
    expect(app.register).type.not.toBeCallableWith(groupcache, { store: {} })
  })
})

describe('reply.bumpGroup', () => {
  test('returns the same reply, generics and all', () => {
    app.get<{ Params: { userId: string }; Reply: { ok: boolean } }>('/users/:userId', async (_request, reply) => {
      const bumped = reply.bumpGroup('user:userId')
      expect(bumped).type.toBe(reply)
      expect(bumped).type.toBeAssignableTo<FastifyReply>()
      return bumped.send({ ok: true })
    })
  })

  test('a chained send() is still checked against the route\'s Reply type', () => {
    app.put<{ Params: { userId: string }; Reply: { ok: boolean } }>('/users/:userId', async (_request, reply) => {
      expect(reply.bumpGroup('user:userId').send).type.toBeCallableWith({ ok: true })
      expect(reply.bumpGroup('user:userId').send).type.not.toBeCallableWith({ ok: 'yes' })
      expect(reply.bumpGroup('user:userId', { userId: '42' }).bumpGroup('posts').send).type.not.toBeCallableWith('a string')
    })
  })

  test('takes a group definition and optional values', () => {
    app.post('/posts', async (_request, reply) => {
      expect(reply.bumpGroup).type.toBeCallableWith('posts')
      expect(reply.bumpGroup).type.toBeCallableWith({ id: 'userId' }, { userId: 1 })
      expect(reply.bumpGroup).type.toBeCallableWith(['userId', 'blogId'])
      expect(reply.bumpGroup).type.not.toBeCallableWith(42)
      expect(reply.bumpGroup).type.not.toBeCallableWith('posts', 'userId')
    })
  })
})
