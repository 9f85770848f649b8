import { performance } from 'node:perf_hooks'

/** The logging part of Generations' Logger that fault logs need. */
export interface FaultLogger {
  warn(obj: unknown, msg?: string): void
  error(obj: unknown, msg?: string): void
}

/**
 * Rate-limits fault logs (README "Redis in production": an outage is a few lines with counts,
 * not one per request). The first fault of an interval is logged in full,
 * through the request's logger when there is one; later faults of the same
 * interval are only counted, per kind, and the counts are logged once when the
 * interval ends (a timer, unref'd, so a quiet process still reports them).
 */
export class FaultLog {
  #until = -Infinity
  /** Faults counted, not logged, in the current interval, by kind (`lookup`, `bump`, …). */
  #suppressed = new Map<string, number>()
  #timer: NodeJS.Timeout | undefined

  constructor(
    readonly intervalMs: number,
    readonly logger: FaultLogger,
    readonly now: () => number = () => performance.now()
  ) {}

  /** Logs a fault, or counts it when one was logged less than an interval ago. Returns true when it was logged. */
  report(kind: string, log: FaultLogger, obj: Record<string, unknown>, msg: string): boolean {
    const now = this.now()
    if (now < this.#until) {
      this.#suppressed.set(kind, (this.#suppressed.get(kind) ?? 0) + 1)
      this.#arm()
      return false
    }
    this.#until = now + this.intervalMs
    log.error(obj, msg)
    return true
  }

  #arm(): void {
    if (this.#timer !== undefined) return
    this.#timer = setTimeout(() => this.flush(), Math.max(1, Math.ceil(this.#until - this.now())))
    this.#timer.unref()
  }

  /** Logs the counts of faults suppressed so far (if any) and starts a new interval. */
  flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#suppressed.size === 0) return
    const suppressed = Object.fromEntries(this.#suppressed)
    const total = [...this.#suppressed.values()].reduce((sum, n) => sum + n, 0)
    this.#suppressed = new Map()
    this.logger.warn({ suppressed, total, intervalMs: this.intervalMs }, `groupcache: ${total} more store faults in the last ${this.intervalMs} ms (not logged one by one)`)
  }
}
