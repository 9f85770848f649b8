import { deserialize, serialize } from 'node:v8'
import { GroupcacheError, GroupcacheTypeError } from '../errors.js'

/**
 * Function-cache values are stored with V8's structured serializer: JSON types,
 * Date, Buffer, bigint, Map, Set and typed arrays round-trip, every read is a
 * fresh copy, and a value that cannot be cloned (a function, a symbol) is an
 * error at `set`, not a corrupt entry. Class instances come back as plain objects.
 */
const FORMAT = 2

export function encodeValue(value: unknown, where: string): Buffer {
  if (value === undefined) {
    throw new GroupcacheError('GC_NOT_SERIALIZABLE', `${where}: undefined cannot be cached (a get would not tell it from a miss); store null instead`)
  }
  let body: Buffer
  try {
    body = serialize(value)
  } catch (err) {
    throw new GroupcacheError('GC_NOT_SERIALIZABLE', `${where}: the value cannot be stored: ${(err as Error).message}`, { cause: err })
  }
  return Buffer.concat([Buffer.from([FORMAT]), body])
}

/** The value, or undefined for bytes that are not a value entry or cannot be read here. */
export function decodeValue(bytes: Buffer): unknown {
  if (bytes[0] !== FORMAT) return undefined
  try {
    return deserialize(bytes.subarray(1))
  } catch {
    return undefined
  }
}

/**
 * Canonical text of the values that are part of a function-cache key (magic #2):
 * every value tagged with its type, object keys sorted, so equal values give
 * equal keys whatever their order, and `1`, `'1'` and `[1]` stay apart.
 */
export function canonicalText(value: unknown, path: string): string {
  return JSON.stringify(tag(value, path))
}

function tag(value: unknown, path: string): unknown {
  switch (typeof value) {
    case 'string':
      return ['s', value]
    case 'number':
      return ['n', Number.isFinite(value) ? value : String(value)]
    case 'boolean':
      return ['b', value]
    case 'bigint':
      return ['i', String(value)]
    case 'undefined':
      return ['u']
    case 'object':
      if (value === null) return ['z']
      if (value instanceof Date) return ['d', Number.isNaN(value.getTime()) ? 'invalid' : value.toISOString()]
      if (Buffer.isBuffer(value) || value instanceof Uint8Array) return ['x', Buffer.from(value).toString('base64')]
      if (Array.isArray(value)) return ['a', value.map((v, i) => tag(v, `${path}[${i}]`))]
      return [
        'o',
        Object.keys(value)
          .sort()
          .map((k) => [k, tag((value as Record<string, unknown>)[k], `${path}.${k}`)])
      ]
    default:
      throw new GroupcacheTypeError('GC_INVALID_VALUE', `${path} cannot be part of a cache key: it is a ${typeof value}`)
  }
}
