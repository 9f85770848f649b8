import { describe, expect, test } from 'tstyche'
import { GenerationalCache, MemoryStore, type BoundCache, type Wrapped } from '../../lib/index.js'

const cache = new GenerationalCache({ store: new MemoryStore(), ttl: 3600 })

describe('cache.wrap', () => {
  test('infers the arguments and the awaited result, never any', () => {
    const page = cache.wrap(async ({ userId, page }: { userId: number; page: number }) => `<p>${userId}:${page}</p>`, { name: 'page', groups: ['user:userId'] })
    expect(page).type.toBe<Wrapped<[{ userId: number; page: number }], Promise<string>>>()
    expect(page({ userId: 1, page: 2 })).type.toBe<Promise<string>>()
    expect(page).type.toBeCallableWith({ userId: 1, page: 2 })
    expect(page).type.not.toBeCallableWith({ userId: '1', page: 2 })
    expect(page).type.not.toBeCallableWith()
    expect(page.invalidate).type.toBeCallableWith({ userId: 1, page: 2 })
    expect(page.invalidate).type.not.toBeCallableWith({ userId: 1 })
    expect(page.clear()).type.toBe<Promise<boolean>>()
  })

  test('a synchronous function is wrapped into a promise of its result', () => {
    const count = cache.wrap((a: number, b: string) => a + b.length, { name: 'count' })
    expect(count(1, 'x')).type.toBe<Promise<number>>()
    expect(count).type.not.toBeCallableWith('1', 'x')
  })

  test('an unannotated parameter is unknown, not any', () => {
    cache.wrap(
      (arg) => {
        expect(arg).type.toBe<unknown>()
        return 1
      },
      { name: 'unannotated' }
    )
  })

  test('options are checked', () => {
    expect(cache.wrap).type.not.toBeCallableWith(() => 1, { ttl: '1' })
    expect(cache.wrap).type.not.toBeCallableWith(() => 1, { groups: [42] })
    expect(cache.wrap).type.not.toBeCallableWith('not a function')
  })
})

describe('get, getOrSet, bind', () => {
  test('get is typed by its type argument, undefined on a miss', () => {
    expect(cache.get<string>(['nav'], { userId: 1 })).type.toBe<Promise<string | undefined>>()
    expect(cache.get(['nav'])).type.toBe<Promise<unknown>>()
  })

  test('getOrSet infers from compute', () => {
    expect(cache.getOrSet(['nav'], { userId: 1 }, () => 42)).type.toBe<Promise<number>>()
    expect(cache.getOrSet(['nav'], { userId: 1 }, async () => ({ html: '' }))).type.toBe<Promise<{ html: string }>>()
  })

  test('bind keeps the groups and returns the bound calls', () => {
    const bound = cache.bind(['customgenz:userId', 'customgenz:blogId'])
    expect(bound).type.toBe<BoundCache>()
    expect(bound.invalidate({ userId: 123 })).type.toBe<Promise<boolean>>()
    expect(bound.getOrSet({ userId: 1 }, () => 'x')).type.toBe<Promise<string>>()
  })

  test('groups must be a list of definitions', () => {
    expect(cache.get).type.not.toBeCallableWith('nav')
    expect(cache.invalidate).type.not.toBeCallableWith([42])
  })
})
