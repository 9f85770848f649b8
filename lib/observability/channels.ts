import diagnostics from 'node:diagnostics_channel'
import { performance } from 'node:perf_hooks'
import type { BreakerState } from '../core/breaker.js'

/**
 * What groupcache publishes on `node:diagnostics_channel` (README "Observability"). The
 * names are stable API: metrics and tracing attach there, never to internals.
 *
 * Publishing costs one boolean check when nobody subscribes: every helper
 * below returns before allocating anything, and the lookup trace is guarded at
 * its call site (`lookupChannel.hasSubscribers`) because its context needs
 * values the call site computes.
 */
export const CHANNELS = {
  /**
   * A `TracingChannel` (subscribe with `diagnostics_channel.tracingChannel(CHANNELS.lookup)`):
   * one lookup of an HTTP request, from before the store is read until the
   * request is answered from the cache or handed to its handler.
   * Messages: {@link LookupContext}.
   */
  lookup: 'groupcache:lookup',
  /** A handler's response (or a function cache value) was stored, or was not (with the reason). Messages: {@link StoreMessage}. */
  store: 'groupcache:store',
  /** A bump reached the store (now, or later by a retry). Messages: {@link BumpMessage}. */
  bump: 'groupcache:bump',
  /** A store call failed or timed out; the request was served uncached. Messages: {@link FaultMessage}. */
  fault: 'groupcache:fault',
  /** The circuit breaker in front of the store changed state. Messages: {@link BreakerMessage}. */
  breaker: 'groupcache:breaker'
} as const

/** How a lookup was answered. */
export type LookupOutcome =
  /** A fresh entry was served. */
  | 'hit'
  /** An entry past its ttl was served (stale-while-revalidate, or a soft bump's grace). */
  | 'stale'
  /** The handler runs (its response may then be stored: see {@link StoreMessage}). */
  | 'miss'
  /** The response of an identical request's handler, which was already running, was served. */
  | 'collapsed'
  /** The cache was skipped (`detail` says why: `authorization`, `store-error`, …). */
  | 'bypass'

/**
 * The context of one lookup, shared by the trace's events (`start`, `end`,
 * `asyncStart`, `asyncEnd`, `error`), so a subscriber can keep per-lookup state
 * in a WeakMap keyed by it. `outcome`, `cacheStatus` and `duration` are set by
 * the time the lookup is answered: at `end` when the store answered
 * synchronously (the memory store), else (`async` is true) at
 * `asyncStart`/`asyncEnd`; `end` then comes first, without an outcome.
 */
export interface LookupContext {
  /** The cache's key prefix: tells caches in one process apart. */
  readonly prefix: string
  /** The store's kind: `memory`, `redis`, or a custom store's class name. */
  readonly store: string
  /**
   * The route: `GET /users/:userId` (a pattern, never a concrete URL: safe as
   * a metric label). For the function cache: `wrap <name>` for a wrapped
   * function, `function cache` for get/getOrSet calls.
   */
  readonly route: string
  /** The request's method; `CALL` for the function cache. */
  readonly method: string
  /** Path and query of the request; for the function cache, the entry's key (its arguments, canonical). */
  readonly url: string
  /** Readable names of the groups the entry depends on (`user:42`, `posts`). */
  readonly groups: readonly string[]
  /** `performance.now()` when the lookup started. */
  readonly startedAt: number
  /** True once the lookup waited (store I/O, or an identical request's handler): its outcome then comes at `asyncEnd`, not `end`. */
  async: boolean
  outcome: LookupOutcome | undefined
  /** Why the cache was bypassed (`authorization`, `pending-bump`, `store-timeout`, …). */
  detail: string | undefined
  /** The RFC 9211 `Cache-Status` value the response carries, when known at lookup time. */
  cacheStatus: string | undefined
  /** Milliseconds from start until the lookup was answered. */
  duration: number | undefined
  /** The store's error, when the lookup failed (the request is then served uncached). */
  error?: unknown
}

/** A handler's response, stored or not. */
export type StoreMessage =
  | {
      readonly prefix: string
      readonly route: string
      readonly stored: true
      /** Bytes written (headers and body, encoded). */
      readonly bytes: number
      /** Time to live of the entry, in seconds. */
      readonly ttl: number
    }
  | {
      readonly prefix: string
      readonly route: string
      readonly stored: false
      /**
       * Why not: `status`, `set-cookie`, `cache-control`, `vary`, `too-big`,
       * `head`, `store-error`, …; `stale-if-error` and `handler-timeout`
       * when a stale entry answered in the handler's place; for the function cache `cancelled` (a
       * delete or set came while it computed), `inflight-limit`, `pending-bump`.
       */
      readonly reason: string
    }

export interface BumpMessage {
  readonly prefix: string
  /** The version keys moved. */
  readonly keys: readonly string[]
  /** Readable names of the groups, aligned with `keys` (`user:42`; `*` for the epoch). */
  readonly groups: readonly string[]
  /** A soft bump lets the previous generation be served stale for a grace period. */
  readonly soft: boolean
  /** True when the bump had failed and a retry made it land. */
  readonly retried: boolean
}

export interface FaultMessage {
  readonly prefix: string
  /** What was being done: `lookup`, `store`, `bump`, `retry`, … */
  readonly what: string
  /** The route, for faults during an HTTP request. */
  readonly route: string | undefined
  /** The error's `code` when it has one (`GC_STORE_TIMEOUT`, `ECONNREFUSED`, …). */
  readonly code: string | undefined
  readonly error: unknown
}

export type { BreakerState }

export interface BreakerMessage {
  readonly prefix: string
  readonly from: BreakerState
  readonly to: BreakerState
}

/**
 * The parts of Node's `TracingChannel` used here, declared here: the type
 * parameters of `TracingChannel` changed order in @types/node 26, and a
 * declaration naming them would not compile for some users with skipLibCheck off.
 */
export interface LookupTracingChannel {
  readonly hasSubscribers: boolean
  readonly start: diagnostics.Channel
  readonly end: diagnostics.Channel
  readonly asyncStart: diagnostics.Channel
  readonly asyncEnd: diagnostics.Channel
  readonly error: diagnostics.Channel
}

/** The lookup trace. Guard a call site with `lookupChannel.hasSubscribers` before building a context. */
export const lookupChannel: LookupTracingChannel = diagnostics.tracingChannel(CHANNELS.lookup)
/** The other channels, for call sites that must guard work done before publishing (`bumpChannel.hasSubscribers`). */
export const storeChannel = diagnostics.channel(CHANNELS.store)
export const bumpChannel = diagnostics.channel(CHANNELS.bump)
export const faultChannel = diagnostics.channel(CHANNELS.fault)
export const breakerChannel = diagnostics.channel(CHANNELS.breaker)

/** Starts a lookup trace (call only when `lookupChannel.hasSubscribers`): publishes `start`. */
export function startLookup(prefix: string, store: string, route: string, method: string, url: string, groups: readonly string[]): LookupContext {
  const context: LookupContext = {
    prefix,
    store,
    route,
    method,
    url,
    groups,
    startedAt: performance.now(),
    async: false,
    outcome: undefined,
    detail: undefined,
    cacheStatus: undefined,
    duration: undefined
  }
  lookupChannel.start.publish(context)
  return context
}

/**
 * The lookup waits (for the store, or for an identical request's handler):
 * publishes `end` with no outcome yet; the outcome comes at `asyncStart` /
 * `asyncEnd`, as with a traced promise. Once per lookup; later calls do nothing.
 */
export function suspendLookup(context: LookupContext | undefined): void {
  if (context === undefined || context.async) return
  context.async = true
  lookupChannel.end.publish(context)
}

/** The lookup is answered: publishes `end` (synchronous) or `asyncStart` then `asyncEnd`, with the outcome. */
export function answerLookup(context: LookupContext | undefined, outcome: LookupOutcome, cacheStatus?: string, detail?: string): void {
  if (context === undefined) return
  context.outcome = outcome
  context.cacheStatus = cacheStatus
  context.detail = detail
  context.duration = performance.now() - context.startedAt
  if (!context.async) {
    lookupChannel.end.publish(context)
    return
  }
  lookupChannel.asyncStart.publish(context)
  lookupChannel.asyncEnd.publish(context)
}

/** The store failed during the lookup: publishes `error` (the outcome, a bypass, follows at end/asyncEnd). */
export function failLookup(context: LookupContext | undefined, error: unknown): void {
  if (context === undefined) return
  context.error = error
  lookupChannel.error.publish(context)
}

export function publishStored(prefix: string, route: string, bytes: number, ttl: number): void {
  if (storeChannel.hasSubscribers) storeChannel.publish({ prefix, route, stored: true, bytes, ttl } satisfies StoreMessage)
}

export function publishNotStored(prefix: string, route: string, reason: string): void {
  if (storeChannel.hasSubscribers) storeChannel.publish({ prefix, route, stored: false, reason } satisfies StoreMessage)
}

export function publishBump(prefix: string, keys: readonly string[], groups: readonly string[], soft: boolean, retried: boolean): void {
  if (bumpChannel.hasSubscribers) bumpChannel.publish({ prefix, keys, groups, soft, retried } satisfies BumpMessage)
}

/** The `code` of an error, when it has a string one. */
export function errorCode(error: unknown): string | undefined {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined
  return typeof code === 'string' ? code : undefined
}

export function publishFault(prefix: string, what: string, route: string | undefined, error: unknown): void {
  if (faultChannel.hasSubscribers) faultChannel.publish({ prefix, what, route, code: errorCode(error), error } satisfies FaultMessage)
}

export function publishBreaker(prefix: string, from: BreakerState, to: BreakerState): void {
  if (breakerChannel.hasSubscribers && from !== to) breakerChannel.publish({ prefix, from, to } satisfies BreakerMessage)
}

/** Handlers for the lookup trace; any subset. */
export interface LookupSubscribers {
  start(context: LookupContext): void
  end(context: LookupContext): void
  asyncStart(context: LookupContext): void
  asyncEnd(context: LookupContext): void
  error(context: LookupContext): void
}

const LOOKUP_EVENTS = ['start', 'end', 'asyncStart', 'asyncEnd', 'error'] as const

/**
 * Subscribes to lookups. `answered` (if given) is called once per lookup, when
 * its outcome is known (at `end` or `asyncEnd`), which is what metrics need.
 * Returns a function that unsubscribes.
 */
export function subscribeLookups(handlers: Partial<LookupSubscribers> & { answered?(context: LookupContext): void }): () => void {
  const { answered } = handlers
  const listeners: [(typeof LOOKUP_EVENTS)[number], (message: unknown) => void][] = []
  for (const event of LOOKUP_EVENTS) {
    const own = handlers[event]
    const callsAnswered = answered !== undefined && (event === 'end' || event === 'asyncEnd')
    if (own === undefined && !callsAnswered) continue
    listeners.push([
      event,
      (message) => {
        const context = message as LookupContext
        own?.(context)
        // `end` of an asynchronous lookup has no outcome yet: `asyncEnd` follows.
        if (callsAnswered && context.outcome !== undefined) answered(context)
      }
    ])
  }
  for (const [event, listener] of listeners) lookupChannel[event].subscribe(listener)
  return () => {
    for (const [event, listener] of listeners) lookupChannel[event].unsubscribe(listener)
  }
}

function subscriber<T>(channel: diagnostics.Channel): (listener: (event: T) => void) => () => void {
  return (listener) => {
    const wrapped = (message: unknown): void => listener(message as T)
    channel.subscribe(wrapped)
    return () => void channel.unsubscribe(wrapped)
  }
}

/** Subscribes to stored / not-stored responses; returns a function that unsubscribes. */
export const subscribeStores = subscriber<StoreMessage>(storeChannel)
/** Subscribes to bumps that landed; returns a function that unsubscribes. */
export const subscribeBumps = subscriber<BumpMessage>(bumpChannel)
/** Subscribes to store faults; returns a function that unsubscribes. */
export const subscribeFaults = subscriber<FaultMessage>(faultChannel)
/** Subscribes to circuit-breaker state changes; returns a function that unsubscribes. */
export const subscribeBreaker = subscriber<BreakerMessage>(breakerChannel)
