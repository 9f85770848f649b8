import type { BumpEvent } from '../core/generations.js'
import { positiveNumber } from '../core/generations.js'
import { checkNamespace, vendorKey, type Vendor } from './names.js'
import { PurgeError, PurgeQueue, type PurgeQueueOptions } from './purge-queue.js'

/**
 * Purges a CDN's copies of bumped groups. Subscribe it to a cache:
 * `app.groupcache.cache.onBump(purger.onBump)`; it is called after a bump
 * landed in the store, and never fails the mutation.
 */
export interface CdnPurger {
  /** A bump listener: queues a purge of the event's groups; resolves when it was sent or given up. */
  readonly onBump: (event: BumpEvent) => Promise<void>
  /** Queues a purge of groups by readable name (`user:42`; `*` purges the deployment key). */
  purge(groupNames: readonly string[]): Promise<void>
  /**
   * Resolves when every purge queued so far was sent or given up. Await it in
   * a mutation (after the bump) for read-your-writes through the CDN.
   */
  idle(): Promise<void>
  /** Sends what is queued, stops retrying, and resolves when done. */
  close(): Promise<void>
  /** The deployment namespace its keys are in (checked against the plugin's `cdn.namespace`). */
  readonly namespace?: string
}

/** Options every purger takes. */
export interface PurgerOptions extends PurgeQueueOptions {
  /**
   * The deployment namespace: must equal the plugin's `cdn.namespace`, so
   * purges name the keys responses carried.
   * @default 'gc'
   */
  namespace?: string
  /**
   * Longest wait for one purge request, in milliseconds; a request that takes
   * longer counts as failed and is retried.
   * @default 10000
   */
  requestTimeoutMs?: number
  /**
   * The fetch to use.
   * @default globalThis.fetch
   */
  fetch?: typeof globalThis.fetch
}

export function createPurger(vendor: Vendor, label: string, send: (keys: string[]) => Promise<void>, batchSize: number, options: PurgerOptions): CdnPurger {
  const namespace = checkNamespace(options.namespace ?? 'gc', `${label} purger: option namespace`)
  const queue = new PurgeQueue(label, send, batchSize, namespace, options)
  const purge = (names: readonly string[]): Promise<void> => queue.enqueue(names.map((name) => vendorKey(vendor, namespace, name)))
  return {
    onBump: (event) => purge(event.groups),
    purge,
    idle: () => queue.idle(),
    close: () => queue.close(),
    namespace
  }
}

/** The pieces of a purger's options every HTTP purger reads. */
export function httpSettings(options: PurgerOptions, label: string): { fetch: typeof globalThis.fetch; timeoutMs: number } {
  return {
    fetch: options.fetch ?? globalThis.fetch,
    timeoutMs: positiveNumber(options.requestTimeoutMs ?? 10_000, 'requestTimeoutMs', `${label} purger: `)
  }
}

/** Replaces every secret in text, so no error or log line can carry one. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text
  for (const secret of secrets) if (secret !== '') out = out.split(secret).join('[redacted]')
  return out
}

/**
 * Sends one purge request and reads the answer: resolves with the body for a
 * 2xx, throws a {@link PurgeError} otherwise (retryable for a network error,
 * a timeout, 429 and 5xx). Secrets are redacted from every message.
 */
export async function purgeRequest(label: string, url: string, init: RequestInit, settings: { fetch: typeof globalThis.fetch; timeoutMs: number }, secrets: readonly string[]): Promise<string> {
  let response: Response
  try {
    response = await settings.fetch(url, { ...init, signal: AbortSignal.timeout(settings.timeoutMs) })
  } catch (err) {
    const message = err instanceof Error ? `${err.name}: ${err.message}${err.cause instanceof Error ? ` (${err.cause.message})` : ''}` : String(err)
    throw new PurgeError(redact(`${label} purge: request failed: ${message}`, secrets), { retryable: true })
  }
  const body = await response.text().catch(() => '')
  if (response.ok) return body
  const retryable = response.status === 429 || response.status >= 500
  const retryAfter = Number(response.headers.get('retry-after'))
  throw new PurgeError(redact(`${label} purge: HTTP ${response.status}: ${body.slice(0, 300)}`, secrets), {
    status: response.status,
    retryable,
    ...(Number.isFinite(retryAfter) && retryAfter > 0 ? { retryAfterMs: retryAfter * 1000 } : {})
  })
}
