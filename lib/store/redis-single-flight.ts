import { randomBytes } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'

/**
 * Fleet-wide single flight on Redis (DESIGN §10): when many processes miss the
 * same entry at once, one of them holds a short lease and runs the handler;
 * the others wait to be woken, then read the entry it stored.
 *
 * - The lease is `SET <lease key> <token> NX PX <leaseMs>`: it dies with its
 *   TTL when its holder crashes, so a crashed leader delays its followers by at
 *   most `leaseMs`, never longer.
 * - Waiters are woken by one pub/sub message per released lease on one channel
 *   per prefix, read by one subscriber connection per instance (opened on first
 *   use): no polling, whatever the number of waiters.
 * - A wait is bounded: past `waitMs` (or when the lease expired unreleased),
 *   the waiter runs its own handler. Expiry under a slow leader can therefore
 *   let a second process run the handler: a small, documented number of runs,
 *   never a stall.
 */
export interface SingleFlightOptions {
  /** Key and channel prefix (the cache's prefix). */
  readonly prefix: string
  /**
   * How long a lease lives unless released, in milliseconds: the longest a
   * crashed leader can make others wait.
   * @default 5000
   */
  readonly leaseMs?: number
  /**
   * Longest a follower waits for the leader, in milliseconds (never longer
   * than `leaseMs`: an unreleased lease has expired by then).
   * @default 5000
   */
  readonly waitMs?: number
}

/** Held by the process that runs the handler; `release()` wakes the others. */
export interface Lease {
  release(): Promise<void>
}

type ReleaseClient = (Redis | Cluster) & {
  gcRelease(key: string, token: string): Promise<number>
}

/** Deletes the lease only if this holder still owns it (its TTL may have passed and another taken it). */
const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`

/** Outcome of waiting for another process's lease. */
export type WaitOutcome = 'released' | 'timeout'

interface Waiter {
  resolve(outcome: WaitOutcome): void
  timer: NodeJS.Timeout
}

export class RedisSingleFlight {
  readonly leaseMs: number
  readonly waitMs: number
  readonly #client: ReleaseClient
  readonly #channel: string
  readonly #leasePrefix: string
  /** Waiters by lease key; bounded by the requests in flight in this process. */
  readonly #waiters = new Map<string, Set<Waiter>>()
  #subscriber: Redis | Cluster | undefined
  #subscribed: Promise<void> | undefined
  #closed = false

  constructor(client: Redis | Cluster, options: SingleFlightOptions) {
    this.leaseMs = options.leaseMs ?? 5000
    this.waitMs = options.waitMs ?? 5000
    this.#client = client as ReleaseClient
    this.#channel = `${options.prefix}:flight`
    this.#leasePrefix = `${options.prefix}:l:`
    if (typeof this.#client.gcRelease !== 'function') client.defineCommand('gcRelease', { numberOfKeys: 1, lua: RELEASE_SCRIPT })
  }

  /** The lease key for an entry key. */
  leaseKey(entryKey: string): string {
    return this.#leasePrefix + entryKey
  }

  /**
   * Takes the lease for an entry and returns it; or, when another process
   * holds it, waits until that lease is released (at most `waitMs`) and
   * returns how the wait ended. The waiter is registered before the lease is
   * asked for, so a release published while the refusal is on its way back
   * is never missed. Rejects only when Redis cannot be asked.
   */
  async lead(entryKey: string): Promise<Lease | WaitOutcome> {
    await this.#subscribe()
    const key = this.leaseKey(entryKey)
    const token = randomBytes(9).toString('base64url')
    const waiter = this.#park(key)
    let taken: string | null
    try {
      taken = await this.#client.set(key, token, 'PX', this.leaseMs, 'NX')
    } catch (err) {
      waiter.cancel()
      throw err
    }
    if (taken !== 'OK') return waiter.outcome
    waiter.cancel()
    return {
      release: async () => {
        await this.#client.gcRelease(key, token)
        await this.#client.publish(this.#channel, key)
      }
    }
  }

  #park(key: string): { outcome: Promise<WaitOutcome>; cancel(): void } {
    let set = this.#waiters.get(key)
    if (set === undefined) this.#waiters.set(key, (set = new Set()))
    const waiters = set
    let waiter!: Waiter
    const outcome = new Promise<WaitOutcome>((resolve) => {
      waiter = {
        resolve: (result) => {
          clearTimeout(waiter.timer)
          waiters.delete(waiter)
          if (waiters.size === 0 && this.#waiters.get(key) === waiters) this.#waiters.delete(key)
          resolve(result)
        },
        // A lease outlives no holder by more than leaseMs: past it, nobody will wake us.
        timer: setTimeout(() => waiter.resolve('timeout'), Math.min(this.waitMs, this.leaseMs))
      }
    })
    waiters.add(waiter)
    return { outcome, cancel: () => waiter.resolve('timeout') }
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
    const subscriber = this.#client.duplicate()
    this.#subscriber = subscriber
    // Errors surface as failed acquire/release calls on the main client; the
    // subscriber reconnects by itself, and a missed wake-up costs a bounded wait.
    subscriber.on('error', () => {})
    subscriber.on('message', (_channel: string, key: string) => {
      const set = this.#waiters.get(key)
      if (set !== undefined) for (const waiter of [...set]) waiter.resolve('released')
    })
    this.#subscribed = subscriber.subscribe(this.#channel).then(
      () => undefined,
      (err: unknown) => {
        this.#subscribed = undefined
        throw err
      }
    )
    return this.#subscribed
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
