import { createRequire } from 'node:module'
import { GroupcacheError } from '../errors.js'

type Ioredis = typeof import('ioredis')

/**
 * ioredis is an optional peer dependency: it is loaded only here, when a
 * `RedisStore` opens its own connection from `url`, so an app on the memory
 * store need not install it (a caller-owned client is already an ioredis
 * object). Loaded with require, not a top-level import, so that importing
 * 'groupcache' never needs it and the store's constructor stays synchronous.
 */
export function loadIoredis(): Ioredis {
  try {
    return createRequire(import.meta.url)('ioredis') as Ioredis
  } catch (err) {
    throw new GroupcacheError(
      'GC_MISSING_DEPENDENCY',
      `RedisStore option url needs the 'ioredis' package, which could not be loaded: install it beside groupcache (npm install ioredis). ${(err as Error).message.split('\n')[0]}`,
      { cause: err }
    )
  }
}
