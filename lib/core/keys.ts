import { digest, encodeMapping, sha1hex, type Mapping } from './encoding.js'
import type { CompiledGroup, GroupValues } from './groups.js'
import { BoundedMemo, listBytes, stringBytes } from './memo.js'

/**
 * The key scheme, in one place (README "How generational caching works"):
 *
 *   <prefix>:epoch          the epoch version (clear() bumps it)
 *   <prefix>:v:<digest>     the version of one group identity (a canonical mapping)
 *   <prefix>:e:<sha1hex>    an entry: sha1 of every version key with its current
 *                           version, in order, followed by the request key
 *
 * The entry key embeds the versions, so bumping any version makes every entry
 * built on the old one unreachable without touching it. Stores derive the entry
 * key in JS (never inside Lua: an ioredis `keyPrefix` would then be missed).
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

/**
 * Version keys memoized for one cache (one prefix), so a param route does not
 * encode and hash each group identity on every request. A group reading one
 * param, given a string, is looked up by a short id of the group and the value
 * (no encoding at all); any other group by its canonical encoding. Bounded by
 * bytes (a few hundred bytes an identity).
 */
export class VersionKeys {
  readonly #memo: BoundedMemo<string>
  /** A short id per compiled group; weak, so groups compiled for one bump are not kept. */
  readonly #groupIds = new WeakMap<CompiledGroup, string>()
  #nextGroupId = 0

  constructor(
    readonly prefix: string,
    /** @default 2097152 (2 MiB) */
    maxBytes = 2 * 1024 * 1024
  ) {
    this.#memo = new BoundedMemo(maxBytes, stringBytes)
  }

  /** The version key of `group` for these values (what `versionKeyFromEncoded(prefix, group.encode(values, request))` gives). */
  of(group: CompiledGroup, values: GroupValues, request?: unknown): string {
    const params = group.params
    if (params === null || params.length !== 1) return this.fromEncoded(group.encode(values, request))
    const value = values[params[0] as string]
    // Other types go through encode, which converts or rejects them.
    if (typeof value !== 'string') return this.fromEncoded(group.encode(values, request))
    let id = this.#groupIds.get(group)
    if (id === undefined) {
      id = `${++this.#nextGroupId}\n`
      this.#groupIds.set(group, id)
    }
    const memoKey = id + value
    let key = this.#memo.get(memoKey)
    if (key === undefined) {
      key = this.fromEncoded(group.encode(values, request))
      this.#memo.set(memoKey, key)
    }
    return key
  }

  fromEncoded(encoded: string): string {
    let key = this.#memo.get(encoded)
    if (key === undefined) {
      key = versionKeyFromEncoded(this.prefix, encoded)
      this.#memo.set(encoded, key)
    }
    return key
  }
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

/** The entry key of these versions for this request key (no memo: see {@link EntryKeys}). */
export function entryKey(prefixForEntries: string, versionKeys: readonly string[], versions: readonly string[], requestKey: string): string {
  return prefixForEntries + sha1hex(entryMaterial(versionKeys, versions, requestKey))
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

interface Derived {
  readonly prefix: string
  readonly keys: readonly string[]
  readonly versions: readonly string[]
  readonly key: string
}

export interface EntryKeysOptions {
  /**
   * Upper bound on the estimated bytes of the memo of derived keys (the last
   * derivation per request key) and of the table of replaced entries.
   * @default 4194304 (4 MiB), halved between the two
   */
  maxBytes?: number
}

/**
 * Entry-key derivation with a memo, one per store: the last key derived for
 * each request key, reused only when the prefix, keys and versions are the
 * same (so it can never return a wrong key). A hit otherwise spends most of
 * its own time building and hashing the material.
 *
 * It also notices when a request key moves to a new generation (same prefix
 * and version keys, other versions): the new key then *replaces* the old one,
 * and {@link takeReplaced} hands the old key to the store once the new entry
 * is stored, so it can delete the orphan instead of leaving it to its TTL.
 */
export class EntryKeys {
  readonly #derived: BoundedMemo<Derived>
  /** New entry key → the entry key of the same request key one generation before. */
  readonly #replaced: BoundedMemo<string>

  constructor(options: EntryKeysOptions = {}) {
    const maxBytes = options.maxBytes ?? 4 * 1024 * 1024
    this.#derived = new BoundedMemo(maxBytes / 2, (d) => listBytes(d.keys) + listBytes(d.versions) + stringBytes(d.key) + 64)
    this.#replaced = new BoundedMemo(maxBytes / 2, stringBytes)
  }

  derive(prefixForEntries: string, versionKeys: readonly string[], versions: readonly string[], requestKey: string): string {
    const last = this.#derived.get(requestKey)
    if (last !== undefined && last.prefix === prefixForEntries && sameList(last.versions, versions) && sameList(last.keys, versionKeys)) return last.key
    const key = entryKey(prefixForEntries, versionKeys, versions, requestKey)
    if (last !== undefined && last.prefix === prefixForEntries && sameList(last.keys, versionKeys)) this.#replaced.set(key, last.key)
    this.#derived.set(requestKey, { prefix: prefixForEntries, keys: versionKeys, versions, key })
    return key
  }

  /** The entry key `key` replaced, once (the caller deletes it after storing `key`). */
  takeReplaced(key: string): string | undefined {
    const old = this.#replaced.get(key)
    if (old !== undefined) this.#replaced.delete(key)
    return old
  }

  /** Estimated bytes held, for tests. */
  get bytes(): number {
    return this.#derived.size.bytes + this.#replaced.size.bytes
  }
}
