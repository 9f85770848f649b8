import { performance } from 'node:perf_hooks'
import { GroupcacheError } from '../errors.js'
import type { CallOutcome } from './deadlines.js'

export type BreakerState = 'closed' | 'open' | 'half-open'

export interface BreakerOptions {
  /**
   * Consecutive failed or timed-out store calls that open the breaker.
   * @default 5
   */
  failures?: number
  /**
   * First cool-down, in milliseconds: while open, the store is not called and
   * lookups bypass the cache at once. Doubled after each failed probe.
   * @default 1000
   */
  cooldown?: number
  /**
   * Longest cool-down, in milliseconds, however many probes failed.
   * @default 10000 (or `cooldown`, when that is longer)
   */
  maxCooldown?: number
}

/**
 * A circuit breaker for one cache's store calls (README "Redis in production").
 *
 * `closed`: every call goes through. After `failures` consecutive failures
 * (errors or timeouts) it opens: for `cooldown` ms, calls are refused at once
 * (GC_STORE_UNAVAILABLE), so an outage stops costing each request the
 * timeout. Then one call is let through as a probe (`half-open`): its success
 * closes the breaker, its failure opens it again for twice as long (up to
 * `maxCooldown`). Any success resets the failure count.
 */
export class Breaker implements CallOutcome {
  readonly failures: number
  readonly cooldown: number
  readonly maxCooldown: number
  #state: BreakerState = 'closed'
  #failed = 0
  #openUntil = 0
  #nextCooldown: number
  /** Called on every change of state (for logs). */
  onChange: (from: BreakerState, to: BreakerState, detail: { failures: number; cooldown: number }) => void = () => {}

  constructor(options: BreakerOptions, readonly now: () => number = () => performance.now()) {
    this.failures = whole(options.failures ?? 5, 'breaker.failures')
    this.cooldown = whole(options.cooldown ?? 1000, 'breaker.cooldown')
    this.maxCooldown = whole(options.maxCooldown ?? Math.max(10_000, this.cooldown), 'breaker.maxCooldown')
    if (this.maxCooldown < this.cooldown) {
      throw new GroupcacheError('GC_INVALID_OPTION', `option breaker.maxCooldown (${this.maxCooldown}) must not be below breaker.cooldown (${this.cooldown})`)
    }
    this.#nextCooldown = this.cooldown
  }

  get state(): BreakerState {
    return this.#state
  }

  /**
   * True when a store call may be made now. Past the cool-down, the first
   * caller becomes the probe (half-open) and everyone else is refused until
   * the probe has answered.
   */
  admit(): boolean {
    if (this.#state === 'closed') return true
    if (this.#state === 'half-open' || this.now() < this.#openUntil) return false
    this.#move('half-open')
    return true
  }

  /** The error a refused call throws. */
  refusal(): GroupcacheError {
    return new GroupcacheError('GC_STORE_UNAVAILABLE', 'groupcache: the store is not being called for now: the circuit breaker is open after repeated store faults')
  }

  succeeded(): void {
    this.#failed = 0
    if (this.#state === 'half-open') {
      this.#nextCooldown = this.cooldown
      this.#move('closed')
    }
  }

  failed(): void {
    this.#failed++
    if (this.#state === 'half-open') {
      this.#nextCooldown = Math.min(this.#nextCooldown * 2, this.maxCooldown)
      this.#open()
    } else if (this.#state === 'closed' && this.#failed >= this.failures) {
      this.#open()
    }
  }

  #open(): void {
    this.#openUntil = this.now() + this.#nextCooldown
    this.#move('open')
  }

  #move(to: BreakerState): void {
    const from = this.#state
    this.#state = to
    this.onChange(from, to, { failures: this.#failed, cooldown: this.#nextCooldown })
  }
}

function whole(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new GroupcacheError('GC_INVALID_OPTION', `option ${name} must be a positive integer, got ${JSON.stringify(value) ?? String(value)}`)
  }
  return value
}
