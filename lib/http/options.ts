import { GroupcacheError } from '../errors.js'
import { GenerationalCache, type GenerationalCacheOptions } from '../core/generational-cache.js'
import { positiveNumber, type Logger } from '../core/generations.js'
import { HttpCache } from './http-cache.js'

/** Options of the Fastify plugin and of `expressCache()`. */
export interface GroupcacheOptions extends GenerationalCacheOptions {
  /**
   * Response statuses stored, unless a route says otherwise.
   * @default [200]
   */
  statuses?: readonly number[]
  /**
   * Largest body stored, in bytes, unless a route says otherwise.
   * @default 1048576 (1 MiB)
   */
  maxEntryBytes?: number
}

const OPTION_NAMES = new Set(['store', 'prefix', 'ttl', 'timeout', 'logger', 'statuses', 'maxEntryBytes'])

/** Checks the adapter options and builds the shared HTTP layer on a new cache. */
export function createHttpCache(options: GroupcacheOptions, frameworkLogger: Logger | undefined): HttpCache {
  if (options === null || typeof options !== 'object') {
    throw new GroupcacheError('GC_INVALID_OPTION', `groupcache: options must be an object, got ${String(options)}`)
  }
  for (const name of Object.keys(options)) {
    if (!OPTION_NAMES.has(name)) {
      throw new GroupcacheError('GC_INVALID_OPTION', `groupcache: unknown option "${name}" (known: ${[...OPTION_NAMES].join(', ')})`)
    }
  }
  const { statuses = [200], maxEntryBytes = 1024 * 1024, logger = frameworkLogger, ...rest } = options
  const gens = new GenerationalCache(logger === undefined ? rest : { ...rest, logger })
  if (!Array.isArray(statuses) || statuses.some((s) => !Number.isInteger(s) || s < 100 || s > 599)) {
    throw new GroupcacheError('GC_INVALID_OPTION', `groupcache: option statuses must be an array of HTTP status codes, got ${JSON.stringify(statuses)}`)
  }
  return new HttpCache(gens, { ttl: gens.ttl, statuses, maxEntryBytes: positiveNumber(maxEntryBytes, 'maxEntryBytes', 'groupcache: ') })
}
