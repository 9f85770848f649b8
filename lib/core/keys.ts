import { digest, encodeMapping, sha1hex, type Mapping } from './encoding.js'

/**
 * The key scheme, in one place (DESIGN §3):
 *
 *   <prefix>:epoch          the epoch version (clear() bumps it)
 *   <prefix>:v:<digest>     the version of one group identity (a canonical mapping)
 *   <prefix>:e:<sha1hex>    an entry: sha1 of every version key with its current
 *                           version, in order, followed by the request key
 *
 * The entry key embeds the versions, so bumping any version makes every entry
 * built on the old one unreachable without touching it. Stores derive the entry
 * key themselves (the Redis store does it inside Lua, to answer a lookup in one
 * round trip), so the material format below is mirrored in lib/store/redis-scripts.ts.
 */
export function epochKey(prefix: string): string {
  return `${prefix}:epoch`
}

export function versionKey(prefix: string, mapping: Mapping): string {
  return `${prefix}:v:${digest(encodeMapping(mapping))}`
}

/** Version key from an already canonical encoding (hot path: skips re-sorting). */
export function versionKeyFromEncoded(prefix: string, encoded: string): string {
  return `${prefix}:v:${digest(encoded)}`
}

export function entryPrefix(prefix: string): string {
  return `${prefix}:e:`
}

/**
 * The text hashed into an entry key. Version keys contain no `=` or newline
 * (the prefix is validated), so the encoding is unambiguous.
 */
export function entryMaterial(versionKeys: readonly string[], versions: readonly string[], requestKey: string): string {
  let material = ''
  for (let i = 0; i < versionKeys.length; i++) material += `${versionKeys[i]}=${versions[i]}\n`
  return material + requestKey
}

/**
 * The last entry key derived for each request key, checked against the keys,
 * versions and prefix before reuse (so it can never return a wrong key). A
 * hit on the memory store otherwise spends most of its own time building and
 * hashing the material. A plain Map emptied when full: bounded, with no LRU
 * bookkeeping on the hit path.
 */
interface Derived {
  prefix: string
  keys: readonly string[]
  versions: readonly string[]
  key: string
}
const derived = new Map<string, Derived>()
const DERIVED_MAX = 4096

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

export function entryKey(prefixForEntries: string, versionKeys: readonly string[], versions: readonly string[], requestKey: string): string {
  const last = derived.get(requestKey)
  if (last !== undefined && last.prefix === prefixForEntries && sameList(last.versions, versions) && sameList(last.keys, versionKeys)) return last.key
  const key = prefixForEntries + sha1hex(entryMaterial(versionKeys, versions, requestKey))
  if (derived.size >= DERIVED_MAX) derived.clear()
  derived.set(requestKey, { prefix: prefixForEntries, keys: versionKeys, versions, key })
  return key
}
