import { Redis, type Cluster, type RedisOptions } from 'ioredis'
import { GroupcacheError } from '../errors.js'
import type { Logger } from '../core/generations.js'
import { entryKey } from '../core/keys.js'
import { BUMP_SCRIPT, LOOKUP_SCRIPT, VERSION_SCRIPT } from './redis-scripts.js'
import type { LookupResult, Store } from './store.js'

export interface RedisStoreOptions {
  /** A caller-owned ioredis `Redis` or `Cluster`. The store never closes it. */
  client?: Redis | Cluster
  /** A Redis URL (`redis://host:6379/0`): the store opens and owns the connection, and closes it with the app. */
  url?: string
  /** ioredis options for the connection opened from `url`. */
  redisOptions?: RedisOptions
}

type ScriptClient = (Redis | Cluster) & {
  gcLookupBuffer(n: number, ...args: (string | number)[]): Promise<(Buffer | null)[]>
  gcVersion(key: string): Promise<string>
  gcBump(n: number, ...keys: string[]): Promise<number>
}

const POLICY_ADVICE: Record<string, string> = {
  'allkeys-lru': 'may evict group version keys (they have no TTL)',
  'allkeys-lfu': 'may evict group version keys (they have no TTL)',
  'allkeys-random': 'may evict group version keys (they have no TTL)'
}

/**
 * A store on Redis, a single node or a Cluster (DESIGN §7).
 *
 * Keys: `<prefix>:epoch` and `<prefix>:v:<digest>` hold versions (no TTL, a few
 * bytes each); `<prefix>:e:<sha1>` hold entries as raw bytes, always with PX.
 * Nothing is ever scanned, and KEYS, FLUSHDB and FLUSHALL are never sent.
 *
 * Single node: a lookup is one EVALSHA (LOOKUP_SCRIPT) that reads or seeds every
 * version, derives the entry key and reads the entry.
 *
 * Cluster: no hash tags are used, so version keys spread over the slots (the
 * epoch, read by every lookup, is one key on one node; group keys spread their
 * load). A lookup is two round trips: the versions in parallel, one script per
 * key in its own slot, then a GET of the entry key derived in JS. Bumps run per
 * key in parallel. No command ever spans two slots, so there is no CROSSSLOT.
 */
export class RedisStore implements Store {
  readonly client: Redis | Cluster
  readonly #owned: boolean
  readonly #cluster: boolean
  #checked = false

  constructor(options: RedisStoreOptions) {
    if (options === null || typeof options !== 'object' || (options.client === undefined) === (options.url === undefined)) {
      throw new GroupcacheError('GC_INVALID_OPTION', 'RedisStore: give exactly one of option client (a caller-owned ioredis Redis or Cluster) or option url')
    }
    if (options.client !== undefined) {
      this.client = options.client
      this.#owned = false
    } else {
      if (typeof options.url !== 'string' || !/^rediss?:\/\//.test(options.url)) {
        throw new GroupcacheError('GC_INVALID_OPTION', `RedisStore option url must be a redis:// or rediss:// URL, got ${JSON.stringify(options.url)}`)
      }
      this.client = new Redis(options.url, { maxRetriesPerRequest: 2, ...options.redisOptions })
      this.#owned = true
    }
    this.#cluster = (this.client as { isCluster?: boolean }).isCluster === true
    const client = this.client as Partial<ScriptClient> & (Redis | Cluster)
    // Registered once per client, even when several stores share it.
    if (typeof client.gcLookupBuffer !== 'function') client.defineCommand('gcLookup', { lua: LOOKUP_SCRIPT })
    if (typeof client.gcVersion !== 'function') client.defineCommand('gcVersion', { numberOfKeys: 1, lua: VERSION_SCRIPT })
    if (typeof client.gcBump !== 'function') client.defineCommand('gcBump', { lua: BUMP_SCRIPT })
  }

  get #scripts(): ScriptClient {
    return this.client as ScriptClient
  }

  async lookup(versionKeys: readonly string[], requestKey: string, entryPrefix: string): Promise<LookupResult> {
    if (this.#cluster) {
      const versions = await Promise.all(versionKeys.map((key) => this.#scripts.gcVersion(key)))
      const key = entryKey(entryPrefix, versionKeys, versions, requestKey)
      return { versions, entryKey: key, entry: (await this.client.getBuffer(key)) ?? undefined }
    }
    const reply = await this.#scripts.gcLookupBuffer(versionKeys.length, ...versionKeys, requestKey, entryPrefix)
    const versions: string[] = new Array(versionKeys.length)
    for (let i = 0; i < versionKeys.length; i++) versions[i] = (reply[i + 2] as Buffer).toString()
    return { versions, entryKey: (reply[0] as Buffer).toString(), entry: reply[1] ?? undefined }
  }

  async set(key: string, value: Buffer, ttlMs: number): Promise<void> {
    await this.client.set(key, value, 'PX', Math.max(1, Math.ceil(ttlMs)))
  }

  async delete(key: string): Promise<void> {
    await this.client.del(key)
  }

  async bump(versionKeys: readonly string[]): Promise<void> {
    if (this.#cluster) {
      await Promise.all(versionKeys.map((key) => this.#scripts.gcBump(1, key)))
      return
    }
    await this.#scripts.gcBump(versionKeys.length, ...versionKeys)
  }

  /**
   * Warns, once, when the server's eviction policy can evict keys without a
   * TTL: group versions would then be evicted before entries. That never serves
   * a stale entry (a lost version is reseeded above every value it had), but
   * every entry of that group becomes a miss. `volatile-*` policies evict only
   * entries (which all have TTLs) and are the right choice.
   */
  async checkServer(logger: Logger): Promise<void> {
    if (this.#checked) return
    this.#checked = true
    try {
      const [, policy] = (await this.client.call('CONFIG', 'GET', 'maxmemory-policy')) as [string, string]
      const advice = POLICY_ADVICE[policy]
      if (advice !== undefined) {
        logger.warn({ policy }, `groupcache: Redis maxmemory-policy is ${policy}, which ${advice}: evicting a version orphans every entry of its group (misses, never stale hits). Prefer volatile-lru or volatile-ttl.`)
      }
    } catch (err) {
      // CONFIG is often disabled on managed Redis; the check is advice only.
      logger.debug?.({ err }, 'groupcache: could not read Redis maxmemory-policy')
    }
  }

  async close(): Promise<void> {
    if (this.#owned) await this.client.quit().catch(() => this.client.disconnect())
  }
}
