import type { Cluster, Redis, RedisOptions } from 'ioredis'
import { checkOptionNames, GroupcacheError } from '../errors.js'
import { loadIoredis } from './ioredis.js'
import type { Logger } from '../core/generations.js'
import { EntryKeys, entryKey } from '../core/keys.js'
import { BoundedMemo, stringBytes } from '../core/memo.js'
import { keySlot } from './cluster-slot.js'
import { BUMP_SCRIPT, SEED_SCRIPT } from './redis-scripts.js'
import { RedisIdentity } from './redis-identity.js'
import { RedisSingleFlight, singleFlightSettings, type SingleFlightOptions } from './redis-single-flight.js'
import type { GraceResult, LookupResult, SingleFlight, Store, StoreBumpOptions, StoreContext } from './store.js'

export interface RedisStoreOptions {
  /** A caller-owned ioredis `Redis` or `Cluster`. The store never closes it. */
  client?: Redis | Cluster
  /** A Redis URL (`redis://host:6379/0`): the store opens and owns the connection, and closes it with the app. */
  url?: string
  /** ioredis options for the connection opened from `url`. */
  redisOptions?: RedisOptions
  /**
   * Upper bound on the estimated bytes this store keeps in process: the
   * versions last seen per version key (so a hit is one MGET), the entry keys
   * derived per request key, and the replaced entries waiting to be deleted.
   * Exceeding it only costs round trips, never correctness.
   * @default 8388608 (8 MiB)
   */
  memoBytes?: number
  /**
   * Fleet-wide single flight (README "Fleet-wide single flight"): concurrent cold misses for one
   * entry across processes run the handler once. The process that leads
   * takes a short lease in Redis (one script per cold miss: SET NX PX) and
   * releases it after storing the entry (one script: DEL + PUBLISH); the
   * others wait on pub/sub (one extra subscriber connection per store, opened
   * on the first cold miss), then read the stored entry. A crashed leader
   * delays them by at most `leaseMs`. `true` takes the defaults
   * (`leaseMs` 5000, `waitMs` 10000).
   * @default false (coalescing stays per process)
   */
  singleFlight?: boolean | SingleFlightOptions
}

type ScriptClient = (Redis | Cluster) & {
  gcSeed(n: number, ...keys: string[]): Promise<[number, ...string[]]>
  gcBump(n: number, ...keysAndArgs: (string | number)[]): Promise<number[]>
}

type Reply = (Buffer | null)[]

function sameVersions(reply: Reply, versions: readonly string[]): boolean {
  for (let i = 0; i < versions.length; i++) {
    const got = reply[i]
    if (!got || got.toString('latin1') !== versions[i]) return false
  }
  return true
}

const POLICY_ADVICE: Record<string, string> = {
  'allkeys-lru': 'may evict group version keys (they have no TTL)',
  'allkeys-lfu': 'may evict group version keys (they have no TTL)',
  'allkeys-random': 'may evict group version keys (they have no TTL)'
}

/**
 * A store on Redis, a single node or a Cluster (README "Redis").
 *
 * Keys: `<prefix>:epoch` and `<prefix>:v:<digest>` hold versions (no TTL, a few
 * bytes each); `<prefix>:e:<sha1>` hold entries as raw bytes, always with PX.
 * Nothing is ever scanned, and KEYS, FLUSHDB and FLUSHALL are never sent.
 * Every key is named in a plain command or in a script's KEYS, so an ioredis
 * `keyPrefix` applies to all of them, and entry keys are derived in JS.
 *
 * Lookup (README "Redis"): the store remembers the version it last saw for each
 * version key (bounded by `memoBytes`). A steady-state hit is ONE plain MGET of
 * the version keys and the entry key the remembered versions lead to; when the
 * versions Redis returns equal the remembered ones, the entry read in the same
 * atomic command is the answer. When a version moved (a bump elsewhere) or is
 * unknown, a second round trip reads the entry the returned versions lead to;
 * a missing version is seeded there (SEED_SCRIPT: the only Lua a lookup runs).
 *
 * Cluster: the same, with the keys grouped by slot: one MGET per slot,
 * all sent at once (one round trip of latency), never a command spanning two
 * slots and no hash tag pinning the cache to one slot. Versions and entry are
 * then not read atomically: a bump racing the lookup can still be missed,
 * exactly as if the lookup had come first; a bump acknowledged before the
 * lookup started is always seen (reads go to primaries).
 *
 * Orphans: when a request key moves to a new generation, the entry of the
 * generation it replaced is deleted after the new entry is stored (best
 * effort; otherwise it ages out by its TTL).
 */
export class RedisStore implements Store {
  readonly client: Redis | Cluster
  readonly #owned: boolean
  readonly #cluster: boolean
  /** The client's own ioredis keyPrefix: only to compute slots (ioredis adds it to every key it sends). */
  readonly #keyPrefix: string
  /** Version key → the version last seen. */
  readonly #versions: BoundedMemo<string>
  readonly #entryKeys: EntryKeys
  #checked = false
  /** Verifies the server behind every connection before its replies are trusted (versions never go back). */
  readonly #identity: RedisIdentity
  readonly #flightSettings: Required<SingleFlightOptions> | undefined
  #flight: RedisSingleFlight | undefined
  /**
   * The first attached cache's prefix names the lease keys and the wake-up
   * channel (lease keys embed the entry key, so caches sharing the store never collide).
   */
  #flightPrefix: string | undefined
  #closed = false

  constructor(options: RedisStoreOptions) {
    if (options === null || typeof options !== 'object' || (options.client === undefined) === (options.url === undefined)) {
      throw new GroupcacheError('GC_INVALID_OPTION', 'RedisStore: give exactly one of option client (a caller-owned ioredis Redis or Cluster) or option url')
    }
    checkOptionNames('RedisStore', options, ['client', 'url', 'redisOptions', 'memoBytes', 'singleFlight'])
    if (options.client !== undefined) {
      this.client = options.client
      this.#owned = false
    } else {
      if (typeof options.url !== 'string' || !/^rediss?:\/\//.test(options.url)) {
        throw new GroupcacheError('GC_INVALID_OPTION', `RedisStore option url must be a redis:// or rediss:// URL, got ${JSON.stringify(options.url)}`)
      }
      this.client = new (loadIoredis().Redis)(options.url, { maxRetriesPerRequest: 2, ...options.redisOptions })
      this.#owned = true
      // An owned connection's errors (refused, reset) go to the cache's logger, rate-limited, never to stderr as unhandled.
      this.client.on('error', (err: unknown) => this.#identity.report(err, 'connection'))
    }
    this.#cluster = (this.client as { isCluster?: boolean }).isCluster === true
    const scaleReads = (this.client.options as { scaleReads?: unknown }).scaleReads
    if (this.#cluster && scaleReads !== 'master') {
      // A replica may not have an acknowledged bump yet: reading versions there could serve a pre-bump entry.
      throw new GroupcacheError('GC_INVALID_OPTION', `RedisStore: the Cluster client reads from replicas (scaleReads: ${JSON.stringify(scaleReads) ?? 'a function'}); versions must be read from primaries: leave scaleReads at 'master'`)
    }
    this.#keyPrefix = String((this.client.options as { keyPrefix?: string }).keyPrefix ?? '')
    const memoBytes = options.memoBytes ?? 8 * 1024 * 1024
    if (!Number.isSafeInteger(memoBytes) || memoBytes < 1024) {
      throw new GroupcacheError('GC_INVALID_OPTION', `RedisStore option memoBytes must be an integer of at least 1024, got ${String(memoBytes)}`)
    }
    this.#versions = new BoundedMemo(memoBytes / 4, stringBytes)
    this.#entryKeys = new EntryKeys({ maxBytes: (memoBytes * 3) / 4 })
    this.#flightSettings = singleFlightSettings(options.singleFlight)
    const client = this.client as Partial<ScriptClient> & (Redis | Cluster)
    // Registered once per client, even when several stores share it.
    if (typeof client.gcSeed !== 'function') client.defineCommand('gcSeed', { lua: SEED_SCRIPT })
    if (typeof client.gcBump !== 'function') client.defineCommand('gcBump', { lua: BUMP_SCRIPT })
    this.#identity = new RedisIdentity(this.client, this.#keyPrefix)
  }

  get #scripts(): ScriptClient {
    return this.client as ScriptClient
  }

  /** Only replies from a server whose identity was verified on that connection are used (RedisIdentity). */
  lookup(versionKeys: readonly string[], requestKey: string, entryPrefix: string): Promise<LookupResult> {
    return this.#identity.trust(() => this.#lookupNow(versionKeys, requestKey, entryPrefix))
  }

  /** A cache started on this store: its epoch is moved whenever the server's identity changes. */
  attach(context: StoreContext): void {
    this.#flightPrefix ??= context.prefix
    this.#identity.attach(context)
  }

  /** Created on first use (the first cold miss), so a store that never misses opens no subscriber. */
  get singleFlight(): SingleFlight | undefined {
    if (this.#flightSettings === undefined || this.#closed) return undefined
    return (this.#flight ??= new RedisSingleFlight(this.client, { prefix: this.#flightPrefix ?? 'gc', ...this.#flightSettings }))
  }

  async #lookupNow(versionKeys: readonly string[], requestKey: string, entryPrefix: string): Promise<LookupResult> {
    const n = versionKeys.length
    let remembered: string[] | undefined = new Array<string>(n)
    for (let i = 0; i < n; i++) {
      const version = this.#versions.get(versionKeys[i] as string)
      if (version === undefined) {
        remembered = undefined
        break
      }
      remembered[i] = version
    }
    if (remembered === undefined) return this.#settle(versionKeys, await this.#read(versionKeys), requestKey, entryPrefix)
    const key = this.#entryKeys.derive(entryPrefix, versionKeys, remembered, requestKey)
    const reply = await this.#read([...versionKeys, key])
    if (sameVersions(reply, remembered)) return { versions: remembered, entryKey: key, entry: reply[n] ?? undefined }
    return this.#settle(versionKeys, reply, requestKey, entryPrefix)
  }

  /**
   * The second round trip, when a version moved or was unknown: remember the
   * versions Redis returned (seeding missing ones) and read the entry they
   * lead to. A version this call seeded was never used, so nothing can be
   * stored under it yet: that is a miss without reading.
   */
  async #settle(versionKeys: readonly string[], reply: Reply, requestKey: string, entryPrefix: string): Promise<LookupResult> {
    const n = versionKeys.length
    const versions = new Array<string>(n)
    const missing: number[] = []
    for (let i = 0; i < n; i++) {
      const got = reply[i]
      if (!got) missing.push(i)
      else versions[i] = got.toString('latin1')
    }
    let fresh = false
    if (missing.length > 0) {
      const seeded = await this.#seed(missing.map((i) => versionKeys[i] as string))
      fresh = seeded.created > 0
      missing.forEach((i, j) => (versions[i] = seeded.versions[j] as string))
    }
    for (let i = 0; i < n; i++) this.#versions.set(versionKeys[i] as string, versions[i] as string)
    const key = this.#entryKeys.derive(entryPrefix, versionKeys, versions, requestKey)
    const entry = fresh ? null : await this.client.getBuffer(key)
    return { versions, entryKey: key, entry: entry ?? undefined }
  }

  /** Reads keys in one command (single node) or one command per slot, all at once (Cluster). */
  async #read(keys: readonly string[]): Promise<Reply> {
    if (!this.#cluster) return this.client.mgetBuffer(keys as string[])
    const bySlot = new Map<number, number[]>()
    for (let i = 0; i < keys.length; i++) {
      const slot = keySlot(this.#keyPrefix + (keys[i] as string))
      const group = bySlot.get(slot)
      if (group === undefined) bySlot.set(slot, [i])
      else group.push(i)
    }
    const reply: Reply = new Array<Buffer | null>(keys.length)
    await Promise.all(
      [...bySlot.values()].map(async (group) => {
        const got = await this.client.mgetBuffer(group.map((i) => keys[i] as string))
        group.forEach((i, j) => (reply[i] = got[j] as Buffer | null))
      })
    )
    return reply
  }

  /** Seeds missing versions: one script on a single node, one per key (each in its own slot) on a Cluster. */
  async #seed(keys: string[]): Promise<{ created: number; versions: string[] }> {
    if (!this.#cluster) {
      const [created, ...versions] = await this.#scripts.gcSeed(keys.length, ...keys)
      return { created, versions }
    }
    const each = await Promise.all(keys.map((key) => this.#scripts.gcSeed(1, key)))
    return { created: each.reduce((sum, [created]) => sum + created, 0), versions: each.map(([, version]) => version as string) }
  }

  /** Stores an entry; then deletes the entry of the generation it replaced, if this store knows one. */
  async set(key: string, value: Buffer, ttlMs: number): Promise<void> {
    await this.client.set(key, value, 'PX', Math.max(1, Math.ceil(ttlMs)))
    const replaced = this.#entryKeys.takeReplaced(key)
    // Best effort, not awaited: a failed delete leaves the orphan to its TTL, as before.
    if (replaced !== undefined) this.client.del(replaced).catch(ignore)
  }

  async delete(key: string): Promise<void> {
    await this.client.del(key)
  }

  async bump(versionKeys: readonly string[], options: StoreBumpOptions = {}): Promise<void> {
    const graceMs = Math.ceil(options.graceMs ?? 0)
    const bumpedAt = Date.now()
    const argv = [graceMs, bumpedAt, bumpedAt + graceMs]
    const n = versionKeys.length
    let next: number[]
    if (this.#cluster) {
      // A version key and its grace record live in different slots: one script per version key, then the
      // records. Safe without atomicity: a record applies only while the version is the one it names.
      next = (await Promise.all(versionKeys.map((key) => this.#scripts.gcBump(1, key, 1, ...argv)))).flat()
      await Promise.all(
        versionKeys.map((key, i) =>
          graceMs > 0 ? this.client.set(graceKey(key), `${(next[i] as number) - 1} ${next[i] as number} ${bumpedAt} ${bumpedAt + graceMs}`, 'PX', graceMs) : this.client.del(graceKey(key))
        )
      )
    } else {
      next = await this.#scripts.gcBump(2 * n, ...versionKeys, ...versionKeys.map(graceKey), n, ...argv)
    }
    // This process's next lookup of these keys then needs no second round trip.
    next.forEach((version, i) => this.#versions.set(versionKeys[i] as string, String(version)))
  }

  /** One read of the grace records on the miss path (one MGET per slot on a Cluster); the old entry only when one applies. */
  async lookupGrace(versionKeys: readonly string[], versions: readonly string[], requestKey: string, entryPrefix: string): Promise<GraceResult | undefined> {
    const records = await this.#identity.trust(() => this.#read(versionKeys.map(graceKey)))
    const now = Date.now()
    let previous: string[] | undefined
    let bumpedAt = 0
    let until = Infinity
    records.forEach((record, i) => {
      if (!record) return
      const [from, to, at, end] = record.toString('latin1').split(' ')
      // A record applies only to the version its soft bump set: any later bump ends it.
      if (to !== versions[i] || Number(end) <= now) return
      previous ??= [...versions]
      previous[i] = from as string
      bumpedAt = Math.max(bumpedAt, Number(at))
      until = Math.min(until, Number(end))
    })
    if (previous === undefined) return undefined
    const key = entryKey(entryPrefix, versionKeys, previous, requestKey)
    const entry = await this.client.getBuffer(key)
    return { entryKey: key, entry: entry ?? undefined, bumpedAt, until }
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
    this.#closed = true
    await this.#flight?.close()
    this.#identity.close()
    if (this.#owned) await this.client.quit().catch(() => this.client.disconnect())
  }
}

function ignore(): void {}

/** The key of a version key's soft-bump record. */
function graceKey(versionKey: string): string {
  return `${versionKey}:g`
}
