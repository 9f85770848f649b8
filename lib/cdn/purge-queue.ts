import { performance } from 'node:perf_hooks'
import { GroupcacheError } from '../errors.js'
import type { Logger } from '../core/generations.js'
import { positiveNumber } from '../core/generations.js'

/** A purge the vendor refused or that never reached it. Its message never carries credentials. */
export class PurgeError extends GroupcacheError {
  /** HTTP status, when the vendor answered. */
  readonly status: number | undefined
  /** Whether sending the same purge again can succeed (network errors, 429, 5xx). */
  readonly retryable: boolean
  /** The vendor's `Retry-After`, in milliseconds. */
  readonly retryAfterMs: number | undefined
  constructor(message: string, details: { status?: number; retryable: boolean; retryAfterMs?: number }) {
    super('GC_PURGE_FAILED', message)
    this.name = 'PurgeError'
    this.status = details.status
    this.retryable = details.retryable
    this.retryAfterMs = details.retryAfterMs
  }
}

/** Batching and retry of a purger. */
export interface PurgeQueueOptions {
  /**
   * How long keys are gathered before a purge is sent, in milliseconds: the
   * bumps of one burst go out in as few requests as the vendor allows.
   * @default 20
   */
  windowMs?: number
  /**
   * Attempts after the first failure of a batch, before it is given up (and logged).
   * @default 5
   */
  retries?: number
  /**
   * First retry delay, in milliseconds; it doubles each attempt (with jitter:
   * each delay is between half and all of it) up to 30 s. A vendor's
   * `Retry-After` is honoured when longer.
   * @default 200
   */
  backoffMs?: number
  /**
   * Most keys waiting to be sent. Past it, the waiting keys are replaced by
   * one purge of the deployment key: everything is purged, nothing missed.
   * @default 10000
   */
  maxPending?: number
  /**
   * Where failures are logged: a warning when a batch first fails, an error
   * when it is given up; at most one line of each kind per 10 s, the next one
   * carrying `suppressed`, the count not logged.
   * @default console
   */
  logger?: Logger
}

const MAX_BACKOFF_MS = 30_000
/** Windows being sent (or retried) at once; later windows wait, their keys merging. */
export const MAX_IN_FLIGHT = 4
/** One line per kind of failure per interval: a CDN outage is a few lines with counts, not one per bump. */
export const PURGE_LOG_INTERVAL_MS = 10_000

type LogKind = 'retrying' | 'landed' | 'given-up' | 'full'

/** The keys gathered in one window, and the promise every enqueue of that window returns. */
interface Window {
  readonly done: Promise<void>
  readonly resolve: () => void
}

/**
 * Gathers keys over a short window, sends them in batches of at most
 * `batchSize`, and retries a failed batch with exponential backoff. It never
 * rejects: a purge that cannot be made is logged and given up, since the
 * CDN's copy still expires by its ttl.
 */
export class PurgeQueue {
  readonly #send: (keys: string[]) => Promise<void>
  readonly #batchSize: number
  readonly #fallbackKey: string
  readonly #vendor: string
  readonly #windowMs: number
  readonly #retries: number
  readonly #backoffMs: number
  readonly #maxPending: number
  readonly #logger: Logger
  #pending = new Set<string>()
  #window: Window | undefined
  /** Per kind: when it was last logged, and how many were not logged since. */
  readonly #logged = new Map<LogKind, { at: number; suppressed: number }>()
  #timer: NodeJS.Timeout | undefined
  readonly #inFlight = new Set<Promise<void>>()
  readonly #sleeps = new Set<{ timer: NodeJS.Timeout; wake(): void }>()
  #closed = false

  constructor(vendor: string, send: (keys: string[]) => Promise<void>, batchSize: number, fallbackKey: string, options: PurgeQueueOptions = {}) {
    this.#vendor = vendor
    this.#send = send
    this.#batchSize = batchSize
    this.#fallbackKey = fallbackKey
    const where = `${vendor} purger: `
    this.#windowMs = options.windowMs === 0 ? 0 : positiveNumber(options.windowMs ?? 20, 'windowMs', where)
    this.#retries = options.retries === 0 ? 0 : Math.floor(positiveNumber(options.retries ?? 5, 'retries', where))
    this.#backoffMs = positiveNumber(options.backoffMs ?? 200, 'backoffMs', where)
    this.#maxPending = Math.floor(positiveNumber(options.maxPending ?? 10_000, 'maxPending', where))
    this.#logger = options.logger ?? { warn: (obj, msg) => console.warn(msg, obj), error: (obj, msg) => console.error(msg, obj) }
  }

  /** Keys waiting for the window to close. */
  get pending(): number {
    return this.#pending.size
  }

  /** Queues keys; resolves once they were purged or given up (never rejects). */
  enqueue(keys: readonly string[]): Promise<void> {
    if (this.#closed) return Promise.resolve()
    for (const key of keys) this.#pending.add(key)
    if (this.#pending.size > this.#maxPending) {
      this.#log('full', 'warn', { pending: this.#pending.size }, `groupcache: ${this.#vendor} purge queue full; purging the deployment key instead`)
      this.#pending = new Set([this.#fallbackKey])
    }
    if (this.#window === undefined) {
      let resolve!: () => void
      const done = new Promise<void>((r) => {
        resolve = r
      })
      this.#window = { done, resolve }
      // Not unref'd: a script that bumps and exits still sends its purges (retries included: a bounded wait; close() ends it).
      this.#timer = setTimeout(() => this.#flush(), this.#windowMs)
    }
    return this.#window.done
  }

  /** Resolves when everything queued so far has been purged or given up. */
  async idle(): Promise<void> {
    while (this.#timer !== undefined || this.#inFlight.size > 0) {
      if (this.#timer !== undefined) this.#flushNow()
      await Promise.all(this.#inFlight)
    }
  }

  /** Sends what is queued now (no more retry waits), and stops. */
  async close(): Promise<void> {
    this.#closed = true
    this.#flushNow()
    for (const sleep of this.#sleeps) {
      clearTimeout(sleep.timer)
      sleep.wake()
    }
    this.#sleeps.clear()
    await this.idle()
  }

  #flushNow(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#flush()
  }

  #flush(): void {
    if (this.#inFlight.size >= MAX_IN_FLIGHT) {
      // Earlier purges still retrying: keep gathering (bounded by maxPending) rather than piling up requests.
      this.#timer = setTimeout(() => this.#flush(), this.#windowMs)
      return
    }
    this.#timer = undefined
    const keys = [...this.#pending]
    const window = this.#window
    this.#pending = new Set()
    this.#window = undefined
    if (window === undefined) return
    const batches: string[][] = []
    for (let i = 0; i < keys.length; i += this.#batchSize) batches.push(keys.slice(i, i + this.#batchSize))
    const run = Promise.all(batches.map((batch) => this.#sendWithRetry(batch))).then(() => {
      this.#inFlight.delete(run)
      window.resolve()
    })
    this.#inFlight.add(run)
  }

  async #sendWithRetry(batch: string[], attempt = 0): Promise<void> {
    try {
      await this.#send(batch)
      if (attempt > 0) this.#log('landed', 'warn', { keys: batch.length, attempts: attempt + 1 }, `groupcache: ${this.#vendor} purge landed after retrying`)
      return
    } catch (err) {
      const retryable = !(err instanceof PurgeError) || err.retryable
      if (!retryable || attempt >= this.#retries || this.#closed) {
        this.#log('given-up', 'error', { err, keys: batch.length, sample: batch.slice(0, 5) }, `groupcache: ${this.#vendor} purge failed after ${attempt + 1} attempt(s); given up, the CDN's copies expire by their ttl`)
        return
      }
      if (attempt === 0) this.#log('retrying', 'warn', { err, keys: batch.length }, `groupcache: ${this.#vendor} purge failed; retrying with backoff`)
      const ceiling = Math.min(this.#backoffMs * 2 ** attempt, MAX_BACKOFF_MS)
      const delay = Math.max(ceiling / 2 + Math.random() * (ceiling / 2), err instanceof PurgeError ? Math.min(err.retryAfterMs ?? 0, MAX_BACKOFF_MS) : 0)
      await this.#sleep(delay)
    }
    return this.#sendWithRetry(batch, attempt + 1)
  }

  /** Logs at most one line per kind per interval; the next line logged says how many were not. */
  #log(kind: LogKind, level: 'warn' | 'error', obj: Record<string, unknown>, msg: string): void {
    const now = performance.now()
    const last = this.#logged.get(kind)
    if (last !== undefined && now - last.at < PURGE_LOG_INTERVAL_MS) {
      last.suppressed++
      return
    }
    this.#logged.set(kind, { at: now, suppressed: 0 })
    this.#logger[level]({ ...obj, vendor: this.#vendor, ...(last !== undefined && last.suppressed > 0 ? { suppressed: last.suppressed } : {}) }, msg)
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const sleep = {
        timer: setTimeout(() => {
          this.#sleeps.delete(sleep)
          resolve()
        }, ms),
        wake: resolve
      }
      this.#sleeps.add(sleep)
    })
  }
}
