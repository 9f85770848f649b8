import type { CompiledRoute } from './route.js'
import type { HeaderBag } from './entry.js'

/**
 * Why a response may not be stored or shared, or undefined when it may.
 * Shared (with coalesced followers) is stored minus the size limit.
 */
export function unshareableReason(route: CompiledRoute, status: number, headers: HeaderBag, body: unknown): string | undefined {
  if (!route.statuses.has(status)) return 'status'
  if (headers['set-cookie'] !== undefined) return 'set-cookie'
  const cacheControl = headers['cache-control']
  if (cacheControl !== undefined && /(?:^|[\s,])(?:no-store|private|no-cache)(?:$|[\s,=])/i.test(String(cacheControl))) return 'cache-control'
  const vary = headers.vary
  if (vary !== undefined) {
    for (const raw of String(vary).split(',')) {
      const name = raw.trim().toLowerCase()
      if (name === '*') return 'vary'
      // A response that varies on a header the key does not include would be
      // served to requests with any value of it.
      if (name !== '' && !route.vary.includes(name)) return 'vary'
    }
  }
  if (body !== null && body !== undefined && typeof body !== 'string' && !Buffer.isBuffer(body)) return 'stream'
  return undefined
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
