import { randomBytes } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import { GroupcacheError } from '../errors.js'
import type { Lease, SingleFlight, WaitOutcome } from './store.js'

export type { Lease, WaitOutcome } from './store.js'

/**
 * Fleet-wide single flight on Redis (README "Fleet-wide single flight"): when many processes miss the
 * same entry at once, one of them holds a short lease and runs the handler;
 * the others wait to be woken, then read the entry it stored.
 *
 * - The lease is `SET <lease key> <token> NX PX <leaseMs>` (in a script that
 *   answers a refusal with the lease's remaining PTTL): it dies with its TTL
 *   when its holder crashes, so a crashed leader delays its followers by at
 *   most `leaseMs`, never longer. A follower wakes when that PTTL runs out and
 *   asks again: one of them takes the lease over, the rest wait for it.
 * - Waiters are woken by one pub/sub message per released lease on one channel
 *   per prefix, read by one subscriber connection per instance (opened on first
 *   use): no polling, whatever the number of waiters.
 * - A wait is bounded by `waitMs` in total: past it the waiter runs its own
 *   handler. A leader slower than `leaseMs` can therefore let a second process
 *   run the handler: a small, documented number of runs, never a stall.
 */
export interface SingleFlightOptions {
  /**
   * How long a lease lives unless released, in milliseconds: the longest a
   * crashed leader can make others wait before one of them takes over.
   * Choose it above the slow end of the handlers' run time: a leader still
   * running when its lease expires lets one more process run the handler.
   * @default 5000
   */
  readonly leaseMs?: number
  /**
   * Longest a follower waits in total, in milliseconds, before it runs its
   * own handler (across a take-over after a crashed leader).
   * @default 10000
   */
  readonly waitMs?: number
}

type FlightClient = (Redis | Cluster) & {
  gcAcquire(numberOfKeys: number, ...args: (string | number)[]): Promise<number>
  gcRelease(key: string, token: string, channel: string, message: string): Promise<number>
}

/**
 * Takes the lease (-1), or answers how long the current holder's lease still
 * lives, in ms (a lease key without a TTL, never written by this code, counts
 * as a fresh lease rather than one to honour for ever). With the entry key as
 * KEYS[2], answers -2 when the entry is there: its leader stored it and
 * released the lease between the caller's lookup and this call.
 */
const ACQUIRE_SCRIPT = `
if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then
  return -2
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return -1
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  return tonumber(ARGV[2])
end
return ttl
`

/**
 * Deletes the lease only if this holder still owns it (its TTL may have passed
 * and another process taken it), and only then wakes the waiters: the holder
 * that took it over is still running.
 */
const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0
`

/** Waking this long after a lease's PTTL ran out leaves it time to be gone on the server. */
const EXPIRY_SLACK_MS = 5

interface Waiter {
  resolve(outcome: WaitOutcome): void
  timer: NodeJS.Timeout | undefined
}

function positiveInteger(value: unknown, name: string): number {
  if (!Number.isSafeInteger(value) || (value as number) <= 0) {
    throw new GroupcacheError('GC_INVALID_OPTION', `RedisStore option singleFlight.${name} must be a positive integer (milliseconds), got ${JSON.stringify(value)}`)
  }
  return value as number
}

/** Checks the RedisStore `singleFlight` option at construction; undefined when it is off. */
export function singleFlightSettings(option: unknown): Required<SingleFlightOptions> | undefined {
  if (option === undefined || option === false) return undefined
  if (option === true) return { leaseMs: 5000, waitMs: 10_000 }
  if (option === null || typeof option !== 'object') {
    throw new GroupcacheError('GC_INVALID_OPTION', `RedisStore option singleFlight must be a boolean or { leaseMs, waitMs }, got ${JSON.stringify(option)}`)
  }
  const { leaseMs = 5000, waitMs = 10_000 } = option as SingleFlightOptions
  return { leaseMs: positiveInteger(leaseMs, 'leaseMs'), waitMs: positiveInteger(waitMs, 'waitMs') }
}

export class RedisSingleFlight implements SingleFlight {
  readonly leaseMs: number
  readonly waitMs: number
  readonly #client: FlightClient
  readonly #channel: string
  readonly #leasePrefix: string
  /** A script may name only keys of one slot: on a Cluster the entry is not checked with the lease. */
  readonly #cluster: boolean
  /** Waiters by lease key; bounded by the requests in flight in this process. */
  readonly #waiters = new Map<string, Set<Waiter>>()
  #subscriber: Redis | Cluster | undefined
  #subscribed: Promise<void> | undefined
  #closed = false

  /** `prefix`: the cache's key prefix, for the lease keys and the channel. */
  constructor(client: Redis | Cluster, options: SingleFlightOptions & { readonly prefix: string }) {
    const settings = singleFlightSettings({ leaseMs: options.leaseMs, waitMs: options.waitMs }) as Required<SingleFlightOptions>
    this.leaseMs = settings.leaseMs
    this.waitMs = settings.waitMs
    this.#client = client as FlightClient
    this.#channel = `${options.prefix}:flight`
    this.#leasePrefix = `${options.prefix}:l:`
    this.#cluster = (client as { isCluster?: boolean }).isCluster === true
    // Registered once per client, even when several stores share it.
    if (typeof this.#client.gcAcquire !== 'function') client.defineCommand('gcAcquire', { lua: ACQUIRE_SCRIPT })
    if (typeof this.#client.gcRelease !== 'function') client.defineCommand('gcRelease', { numberOfKeys: 1, lua: RELEASE_SCRIPT })
  }

  /** The lease key for an entry key. */
  leaseKey(entryKey: string): string {
    return this.#leasePrefix + entryKey
  }

  /**
   * Takes the lease for an entry and returns it; or, when another process
   * holds it, waits until that lease is released and returns `'released'`.
   * When the holder's lease expires unreleased (it crashed, or is slower than
   * `leaseMs`), asks again: this call may then take the lease over. Past
   * `waitMs` in total, returns `'timeout'`. Rejects only when Redis cannot be
   * asked (a Redis that does not answer counts against `waitMs`).
   *
   * `cold`: the caller's lookup found no entry. On a single node the lease is
   * then asked for in the same script as a check that the entry is still
   * absent: a leader that stored it and released its lease just after that
   * lookup answers `'released'` at once, instead of leaving the lease free for
   * a second run. (Not on a Cluster, where the two keys are in different slots.)
   *
   * `held`: called once, at the first refusal (another process holds the
   * lease), before waiting; costs the lease holder nothing.
   */
  async lead(entryKey: string, cold = false, held?: () => void): Promise<Lease | WaitOutcome> {
    const key = this.leaseKey(entryKey)
    const deadline = Date.now() + this.waitMs
    let told = held === undefined
    for (;;) {
      const remaining = deadline - Date.now()
      if (this.#closed || remaining <= 0) return 'timeout'
      const token = randomBytes(9).toString('base64url')
      // Parked before asking: a release published while the refusal is on its way back is never missed.
      const waiter = this.#park(key)
      let asked: number | 'timeout'
      try {
        asked = await this.#ask(key, token, remaining, cold && !this.#cluster ? entryKey : undefined)
      } catch (err) {
        waiter.wake('timeout')
        throw err
      }
      if (asked === -1) {
        waiter.wake('timeout')
        // Never rejects (#release): a lease that could not be dropped dies with its TTL.
        return { release: () => this.#release(key, token) }
      }
      if (asked === 'timeout' || asked === -2) {
        waiter.wake('timeout')
        return asked === -2 ? 'released' : 'timeout'
      }
      if (!told) {
        told = true
        ;(held as () => void)()
      }
      const expiresIn = asked + EXPIRY_SLACK_MS
      const left = deadline - Date.now()
      const outcome = await waiter.wait(Math.min(left, expiresIn))
      if (outcome === 'released' || expiresIn >= left) return outcome
    }
  }

  /**
   * Subscribes (once) and runs the acquire script, bounded by `boundMs`. A
   * lease granted after the bound is released at once: nobody will run the
   * handler for it.
   */
  #ask(key: string, token: string, boundMs: number, entryKey: string | undefined): Promise<number | 'timeout'> {
    const asking = this.#subscribe().then(() =>
      entryKey === undefined ? this.#client.gcAcquire(1, key, token, this.leaseMs) : this.#client.gcAcquire(2, key, entryKey, token, this.leaseMs)
    )
    return new Promise((resolve, reject) => {
      let late = false
      const timer = setTimeout(() => {
        late = true
        resolve('timeout')
      }, boundMs)
      // After the bound these settle nothing (the promise is resolved); only a late lease needs handling.
      asking.then(
        (taken) => {
          clearTimeout(timer)
          if (late && taken === -1) void this.#release(key, token)
          resolve(taken)
        },
        (err: unknown) => {
          clearTimeout(timer)
          reject(err)
        }
      )
    })
  }

  async #release(key: string, token: string): Promise<void> {
    try {
      await this.#client.gcRelease(key, token, this.#channel, key)
    } catch {
      // The lease dies with its TTL; its waiters wake then.
    }
  }

  #park(key: string): { wait(ms: number): Promise<WaitOutcome>; wake(outcome: WaitOutcome): void } {
    let set = this.#waiters.get(key)
    if (set === undefined) this.#waiters.set(key, (set = new Set()))
    const waiters = set
    let waiter!: Waiter
    const outcome = new Promise<WaitOutcome>((resolve) => {
      waiter = {
        resolve: (result) => {
          clearTimeout(waiter.timer)
          if (!waiters.delete(waiter)) return
          // The set leaves the map only once empty, so the map still holds this one.
          if (waiters.size === 0) this.#waiters.delete(key)
          resolve(result)
        },
        timer: undefined
      }
    })
    waiters.add(waiter)
    return {
      wait: (ms) => {
        // Not unref'd: a request is waiting on it.
        if (waiters.has(waiter)) waiter.timer = setTimeout(() => waiter.resolve('timeout'), ms)
        return outcome
      },
      wake: (result) => waiter.resolve(result)
    }
  }

  /** Waiters currently parked (for stats and tests). */
  get waiting(): number {
    let n = 0
    for (const set of this.#waiters.values()) n += set.size
    return n
  }

  #subscribe(): Promise<void> {
    if (this.#subscribed !== undefined) return this.#subscribed
    // A connection in subscriber mode can send nothing else: a second one, owned here.
    const subscriber = (this.#client as { duplicate(): Redis | Cluster }).duplicate()
    this.#subscriber = subscriber
    // Faults surface as failed acquire calls on the main client; the subscriber
    // reconnects (and resubscribes) by itself, and a missed wake-up costs a bounded wait.
    subscriber.on('error', () => {})
    subscriber.on('message', (_channel: string, key: string) => {
      const set = this.#waiters.get(key)
      if (set !== undefined) for (const waiter of [...set]) waiter.resolve('released')
    })
    const subscribed = subscriber.subscribe(this.#channel).then(
      () => undefined,
      (err: unknown) => {
        this.#subscribed = undefined
        this.#subscriber = undefined
        subscriber.disconnect()
        throw err
      }
    )
    this.#subscribed = subscribed
    return subscribed
  }

  /** Wakes every waiter (they run their own handlers) and closes the subscriber connection. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const set of [...this.#waiters.values()]) for (const waiter of [...set]) waiter.resolve('timeout')
    const subscriber = this.#subscriber
    this.#subscriber = undefined
    if (subscriber !== undefined) await subscriber.quit().catch(() => subscriber.disconnect())
  }
}
