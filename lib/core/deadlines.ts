import { performance } from 'node:perf_hooks'
import { GroupcacheError } from '../errors.js'

/** Told how each bounded call ended (the circuit breaker listens here, so it costs no extra promise). */
export interface CallOutcome {
  succeeded(): void
  failed(): void
}

interface Waiting {
  readonly deadline: number
  /**
   * Undefined once the call settled. Dropped then, not at the deadline: it
   * holds the call's promise, and so its result, which would otherwise stay
   * reachable for the whole timeout (on the Redis hit path, every hit's reply
   * for 250 ms by default: long enough to outlive young-generation collections).
   */
  reject: ((err: Error) => void) | undefined
}

/**
 * Bounds promises by one fixed timeout with a single timer. Every call has the
 * same timeout, so deadlines arrive in the order calls were made: a FIFO queue
 * and one timer for its head replace a setTimeout/clearTimeout pair per store
 * call (which cost about a microsecond each on the Redis hit path).
 *
 * Deadlines are on the monotonic clock (performance.now): a wall clock stepped
 * back would otherwise postpone every timeout by the step.
 */
export class Deadlines {
  readonly #queue: Waiting[] = []
  #head = 0
  #timer: NodeJS.Timeout | undefined

  constructor(
    readonly timeoutMs: number,
    readonly now: () => number = () => performance.now()
  ) {}

  bound<T>(promise: Promise<T>, outcome?: CallOutcome): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const waiting: Waiting = {
        deadline: this.now() + this.timeoutMs,
        reject: (err) => {
          outcome?.failed()
          reject(err)
        }
      }
      this.#queue.push(waiting)
      this.#arm()
      promise.then(
        (value) => {
          if (waiting.reject === undefined) return
          waiting.reject = undefined
          outcome?.succeeded()
          resolve(value)
        },
        (err: unknown) => {
          if (waiting.reject === undefined) return
          waiting.reject = undefined
          outcome?.failed()
          reject(err)
        }
      )
    })
  }

  #arm(): void {
    if (this.#timer !== undefined) return
    const head = this.#queue[this.#head] as Waiting
    // Not unref'd: a pending store call must time out even when nothing else keeps the process alive.
    this.#timer = setTimeout(() => this.#expire(), Math.max(1, Math.ceil(head.deadline - this.now())))
  }

  #expire(): void {
    this.#timer = undefined
    const now = this.now()
    while (this.#head < this.#queue.length) {
      const waiting = this.#queue[this.#head] as Waiting
      const reject = waiting.reject
      if (reject !== undefined && waiting.deadline > now) break
      this.#head++
      if (reject !== undefined) {
        waiting.reject = undefined
        reject(new GroupcacheError('GC_STORE_TIMEOUT', `groupcache: store did not answer within ${this.timeoutMs} ms`))
      }
    }
    // Drop what has been passed over now and then, not on every call.
    if (this.#head > 1024 || this.#head === this.#queue.length) {
      this.#queue.splice(0, this.#head)
      this.#head = 0
    }
    if (this.#head < this.#queue.length) this.#arm()
  }
}
