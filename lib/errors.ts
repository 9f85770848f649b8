/**
 * Errors thrown by groupcache carry a stable `code` so callers can branch on
 * them without parsing messages. Messages name the thing at fault: the route,
 * the group, the option.
 */
export type GroupcacheErrorCode =
  /** A plugin, route or store option has a bad value. */
  | 'GC_INVALID_OPTION'
  /** A group definition is not one of the supported forms. */
  | 'GC_INVALID_GROUP'
  /** A group names a param that the route does not have. */
  | 'GC_UNKNOWN_PARAM'
  /** A group names a param that the values given do not have. */
  | 'GC_MISSING_VALUE'
  /** A mapping value is not a string, number, boolean or bigint. */
  | 'GC_INVALID_VALUE'
  /** A value given to the function cache cannot be serialized. */
  | 'GC_NOT_SERIALIZABLE'
  /** A store call did not answer within the timeout. */
  | 'GC_STORE_TIMEOUT'
  /** A route pattern cannot be used (Express route tables). */
  | 'GC_INVALID_PATTERN'
  /** The store is not being called for now: the circuit breaker is open after repeated faults. */
  | 'GC_STORE_UNAVAILABLE'
  /** An optional package a feature needs is not installed (e.g. ioredis for RedisStore({ url })). */
  | 'GC_MISSING_DEPENDENCY'
  /** A CDN purge was refused by the vendor or never reached it (logged; never fails a mutation). */
  | 'GC_PURGE_FAILED'

export class GroupcacheError extends Error {
  readonly code: GroupcacheErrorCode
  constructor(code: GroupcacheErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'GroupcacheError'
    this.code = code
  }
}

/** A bad value passed at call time (a bump, a function-cache call): a TypeError, as for any bad argument. */
export class GroupcacheTypeError extends TypeError {
  readonly code: GroupcacheErrorCode
  constructor(code: GroupcacheErrorCode, message: string) {
    super(message)
    this.name = 'GroupcacheTypeError'
    this.code = code
  }
}

/**
 * Rejects option names a constructor does not know (a typo such as `tll`
 * would otherwise be ignored, silently), naming the option and the known ones.
 */
export function checkOptionNames(owner: string, options: object, known: readonly string[]): void {
  for (const name of Object.keys(options)) {
    if (!known.includes(name)) throw new GroupcacheError('GC_INVALID_OPTION', `${owner}: unknown option "${name}" (known: ${known.join(', ')})`)
  }
}
