import { hash } from 'node:crypto'
import { GroupcacheTypeError } from '../errors.js'

/** A group's identity: flat string keys to string values (README "Group definitions"). */
export type Mapping = Record<string, string>

/** What a mapping value may be before it is compared as a string. */
export type MappingValue = string | number | boolean | bigint

/**
 * Turns a mapping value into the string it is compared as (`42` and `'42'` are
 * one group). Anything that is not a string, number, boolean or bigint is a
 * TypeError naming the group and the key, because `String({})` would silently
 * make every object the same group.
 */
export function valueToString(value: unknown, group: string, key: string): string {
  switch (typeof value) {
    case 'string':
      return value
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(value)
    default:
      throw new GroupcacheTypeError(
        'GC_INVALID_VALUE',
        `group ${group}: value of "${key}" must be a string, number, boolean or bigint, got ${describe(value)}`
      )
  }
}

export function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'object') return 'an object'
  return typeof value
}

/**
 * Canonical encoding of a mapping: JSON of its `[key, value]` pairs sorted by
 * key. JSON escapes every separator, so two different mappings can never
 * encode alike — unlike the seed's md5 over concatenated keys and values, where
 * `{ab: 'c'}` and `{a: 'bc'}` collided.
 */
export function encodeMapping(mapping: Mapping): string {
  const keys = Object.keys(mapping).sort()
  const pairs: [string, string][] = new Array(keys.length)
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as string
    pairs[i] = [k, mapping[k] as string]
  }
  return JSON.stringify(pairs)
}

// crypto.hash is the one-shot form (Node >= 20.12): no Hash object per call,
// about half the cost of createHash() for short inputs.

/** Short, key-safe digest for version keys (computed in JS only). */
export function digest(text: string | Buffer): string {
  return hash('sha1', text, 'base64url')
}

/** Hex sha1: the one hash Redis's Lua also has (`redis.sha1hex`), used for entry keys. */
export function sha1hex(text: string): string {
  return hash('sha1', text, 'hex')
}
