import { performance } from 'node:perf_hooks'
import { GroupcacheError } from '../errors.js'

/** Told how each bounded call ended (the circuit breaker listens here, so it costs no extra promise). */
export interface CallOutcome {
  succeeded(): void
  failed(): void
}

/**
 * One bounded call, linked into the list of pending calls until it settles or
 * its deadline passes. Unlinked as soon as it settles, so it dies young: a
 * queue that kept every call until its deadline kept every Redis reply for the
 * whole timeout, and V8 then allocated these objects in the old generation,
 * which made the Redis hit path run a full collection every 0.6 s or so.
 */
class Waiting {
  prev: Waiting | undefined = undefined
  next: Waiting | undefined = undefined
  constructor(
    readonly deadline: number,
    /** Undefined once the call settled or timed out. */
    public reject: ((err: Error) => void) | undefined
  ) {}
}

/**
 * Bounds promises by one fixed timeout with a single timer. Every call has the
 * same timeout, so deadlines arrive in the order calls were made: a FIFO list
 * of pending calls and one timer for its head replace a setTimeout/clearTimeout
 * pair per store call (which cost about a microsecond each on the Redis hit
 * path). A call that settles leaves the list at once; the timer, armed for an
 * earlier head, then finds a later one and re-arms for it.
 *
 * Deadlines are on the monotonic clock (performance.now): a wall clock stepped
 * back would otherwise postpone every timeout by the step.
 */
export class Deadlines {
  #head: Waiting | undefined
  #tail: Waiting | undefined
  #timer: NodeJS.Timeout | undefined

  constructor(
    readonly timeoutMs: number,
    readonly now: () => number = () => performance.now()
  ) {}

  bound<T>(promise: Promise<T>, outcome?: CallOutcome): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const waiting = new Waiting(this.now() + this.timeoutMs, (err) => {
        outcome?.failed()
        reject(err)
      })
      this.#append(waiting)
      this.#arm()
      promise.then(
        (value) => {
          if (waiting.reject === undefined) return
          this.#unlink(waiting)
          outcome?.succeeded()
          resolve(value)
        },
        (err: unknown) => {
          if (waiting.reject === undefined) return
          this.#unlink(waiting)
          outcome?.failed()
          reject(err)
        }
      )
    })
  }

  #append(waiting: Waiting): void {
    waiting.prev = this.#tail
    if (this.#tail === undefined) this.#head = waiting
    else this.#tail.next = waiting
    this.#tail = waiting
  }

  /** Takes a call out of the list and marks it settled. */
  #unlink(waiting: Waiting): void {
    const { prev, next } = waiting
    if (prev === undefined) this.#head = next
    else prev.next = next
    if (next === undefined) this.#tail = prev
    else next.prev = prev
    waiting.prev = waiting.next = undefined
    waiting.reject = undefined
  }

  #arm(): void {
    if (this.#timer !== undefined || this.#head === undefined) return
    // Not unref'd: a pending store call must time out even when nothing else keeps the process alive.
    this.#timer = setTimeout(() => this.#expire(), Math.max(1, Math.ceil(this.#head.deadline - this.now())))
  }

  #expire(): void {
    this.#timer = undefined
    const now = this.now()
    let waiting = this.#head
    while (waiting !== undefined && waiting.deadline <= now) {
      const reject = waiting.reject as (err: Error) => void
      this.#unlink(waiting)
      reject(new GroupcacheError('GC_STORE_TIMEOUT', `groupcache: store did not answer within ${this.timeoutMs} ms`))
      waiting = this.#head
    }
    this.#arm()
  }
}
