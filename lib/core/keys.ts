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

export function entryKey(prefixForEntries: string, versionKeys: readonly string[], versions: readonly string[], requestKey: string): string {
  return prefixForEntries + sha1hex(entryMaterial(versionKeys, versions, requestKey))
}
