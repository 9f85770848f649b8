import Fastify, { type FastifyRequest } from 'fastify'
import type { Request } from 'express'
import { describe, expect, test } from 'tstyche'
import { expressCache } from '../../lib/express.js'
import groupcache, { GenerationalCache, type GroupDef, type GroupFunction, type GroupRequest, type GroupValues } from '../../lib/index.js'

describe('GroupFunction', () => {
  test('its parameters are typed, with no any: values, and a request that may be absent', () => {
    const tenant: GroupFunction = (values, request) => {
      expect(values).type.toBe<GroupValues>()
      expect(request).type.toBe<GroupRequest | undefined>()
      expect(request?.headers['x-tenant']).type.toBe<string | string[] | undefined>()
      return { tenant: String(request?.headers['x-tenant'] ?? 'public') }
    }
    expect(tenant).type.toBeAssignableTo<GroupDef>()
  })

  test('a header may be undefined: returning it unchecked is a compile error', () => {
    expect<GroupFunction>().type.not.toBeAssignableFrom((_values: GroupValues, request?: GroupRequest) => ({ tenant: request?.headers['x-tenant'] }))
    expect<GroupFunction>().type.not.toBeAssignableFrom((values: GroupValues) => ({ userId: values.userId }))
    expect<GroupFunction>().type.toBeAssignableFrom((values: GroupValues) => ({ userId: String(values.userId) }))
  })

  test('the mapping holds strings, numbers, booleans or bigints only', () => {
    expect<GroupFunction>().type.toBeAssignableFrom(() => ({ a: 'x', b: 1, c: true, d: 2n }))
    expect<GroupFunction>().type.not.toBeAssignableFrom(() => ({ a: { nested: 1 } }))
    expect<GroupFunction>().type.not.toBeAssignableFrom(() => ({ a: null }))
    expect<GroupFunction>().type.not.toBeAssignableFrom(() => 'posts')
  })

  test('may be annotated with the route\'s params and the framework\'s request', () => {
    expect<GroupFunction>().type.toBeAssignableFrom((params: { tenantId: string }, request: FastifyRequest<{ Params: { tenantId: string } }>) => ({
      tenant: params.tenantId,
      host: request.host
    }))
    expect<GroupFunction>().type.toBeAssignableFrom((params: { tenantId: string }, req: Request<{ tenantId: string }>) => ({ tenant: params.tenantId, ip: req.ip ?? '' }))
    // …but not with a request type a framework's request cannot be.
    expect<GroupFunction>().type.not.toBeAssignableFrom((_params: GroupValues, request: { headers: number }) => ({ n: request.headers }))
  })
})

describe('group functions in route options', () => {
  test('Fastify config.cache gives them typed parameters', async () => {
    const app = Fastify()
    await app.register(groupcache)
    app.get(
      '/feed',
      {
        config: {
          cache: {
            group: (params, request) => {
              expect(params).type.toBe<GroupValues>()
              expect(request).type.toBe<GroupRequest | undefined>()
              return { feed: String(request?.headers['x-tenant'] ?? 'public') }
            }
          }
        }
      },
      async () => 'ok'
    )
  })

  test('Express gc.route() gives them typed parameters', () => {
    const gc = expressCache()
    gc.route({
      groups: [
        (params, request) => {
          expect(params).type.toBe<GroupValues>()
          expect(request).type.toBe<GroupRequest | undefined>()
          return { feed: String(request?.headers['x-tenant'] ?? 'public') }
        }
      ]
    })
  })

  test('the function cache gives them typed parameters (and no request)', async () => {
    const cache = new GenerationalCache()
    await cache.get([(values, request) => {
      expect(values).type.toBe<GroupValues>()
      expect(request).type.toBe<GroupRequest | undefined>()
      return { user: String(values.userId) }
    }], { userId: 1 })
  })
})
