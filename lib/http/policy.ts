import type { CompiledRoute } from './route.js'
import type { HeaderBag } from './entry.js'

/** Why a miss was not stored: the `detail=` of its Cache-Status. */
export type NotStoredReason =
  /** The status is not one the route stores. */
  | 'status'
  /** The response sets a cookie (judged on the headers actually written). */
  | 'set-cookie'
  /** `Cache-Control: no-store`. */
  | 'no-store'
  /** `Cache-Control: private`. */
  | 'private'
  /** `Cache-Control: no-cache`: a shared cache would have to revalidate every time, and cannot. */
  | 'no-cache'
  /** `Vary: *`, a Vary on a header the key does not include yet (learned for next time), or too many of them. */
  | 'vary'
  /** The body was streamed. */
  | 'streamed'
  /** The body is over `maxEntryBytes`. */
  | 'too-big'
  /** A HEAD response: its body is not the GET body. */
  | 'head'
  /** The store refused or timed out on the write (logged; the response itself is fine). */
  | 'store-error'

/** The comma-separated tokens of a header value, trimmed and lower-cased. */
export function headerTokens(value: HeaderBag[string]): string[] {
  if (value === undefined) return []
  const out: string[] = []
  for (const raw of (Array.isArray(value) ? value.join(',') : String(value)).split(',')) {
    const token = raw.trim().toLowerCase()
    if (token !== '') out.push(token)
  }
  return out
}

/**
 * Why a response may not be stored or shared, or undefined when it may.
 * Shared (with coalesced followers) is stored minus the size limit.
 *
 * `keyed` names the request headers the lookup's key included; `preset`
 * the Vary tokens already on the response when the handler started (CORS's
 * `Origin`): those concern headers recomputed on every hit and split nothing.
 * A Vary token that is neither is a header the key must learn: the response
 * is not stored (it would be served to requests with any value of it).
 */
export function notStoredReason(
  route: CompiledRoute,
  status: number,
  headers: HeaderBag,
  body: unknown,
  keyed: readonly string[],
  preset: ReadonlySet<string>
): NotStoredReason | undefined {
  if (!route.statuses.has(status)) return 'status'
  if (headers['set-cookie'] !== undefined) return 'set-cookie'
  const cacheControl = headerTokens(headers['cache-control'])
  for (const directive of cacheControl) {
    const name = directive.split('=')[0]?.trim()
    if (name === 'no-store' || name === 'private' || name === 'no-cache') return name
  }
  for (const name of headerTokens(headers.vary)) {
    if (name === '*') return 'vary'
    if (!preset.has(name) && !keyed.includes(name)) return 'vary'
  }
  if (body !== null && body !== undefined && typeof body !== 'string' && !Buffer.isBuffer(body)) return 'streamed'
  return undefined
}

/** Vary tokens of a response that the key does not include yet and did not come from before the handler. */
export function unkeyedVary(headers: HeaderBag, keyed: readonly string[], preset: ReadonlySet<string>): string[] {
  return headerTokens(headers.vary).filter((name) => name !== '*' && !preset.has(name) && !keyed.includes(name))
}

/** Does an If-None-Match header match this ETag (weak comparison, RFC 9110 §13.1.2)? */
export function ifNoneMatchMatches(header: string | string[] | undefined, etag: string): boolean {
  if (header === undefined) return false
  const value = Array.isArray(header) ? header.join(',') : header
  if (value.trim() === '*') return true
  const opaque = etag.startsWith('W/') ? etag.slice(2) : etag
  for (const raw of value.split(',')) {
    const tag = raw.trim()
    if ((tag.startsWith('W/') ? tag.slice(2) : tag) === opaque) return true
  }
  return false
}
