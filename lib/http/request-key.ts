import type { IncomingHttpHeaders } from 'node:http'
import type { CompiledRoute } from './route.js'

function decode(text: string): string {
  if (!/[%+]/.test(text)) return text
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '))
  } catch {
    return text
  }
}

/**
 * A query string in canonical form: params decoded, sorted by name (a stable
 * sort, so repeated params keep their order: `?a=2&a=1` stays distinct from
 * `?a=1&a=2`), filtered by the route's allowlist.
 */
export function normalizeQuery(raw: string, allow: true | ReadonlySet<string>): string {
  const pairs: [string, string][] = []
  for (const part of raw.split('&')) {
    if (part === '') continue
    const eq = part.indexOf('=')
    const name = decode(eq < 0 ? part : part.slice(0, eq))
    if (allow !== true && !allow.has(name)) continue
    pairs.push([name, eq < 0 ? '' : decode(part.slice(eq + 1))])
  }
  if (pairs.length === 0) return ''
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  return JSON.stringify(pairs)
}

function headerValue(value: string | string[] | undefined): string | null {
  if (value === undefined) return null
  return Array.isArray(value) ? value.join(', ') : value
}

/**
 * The request key (DESIGN §3): the route's config fingerprint, the host
 * (lower-cased), the path, the normalized query and the values of the headers
 * the route varies on, JSON-encoded so no two requests share a key by accident.
 */
export function requestKey(route: CompiledRoute, url: string, headers: IncomingHttpHeaders): string {
  const q = url.indexOf('?')
  const path = q < 0 ? url : url.slice(0, q)
  const query = q < 0 || route.query === false ? '' : normalizeQuery(url.slice(q + 1), route.query)
  const host = (headers.host ?? '').toLowerCase()
  if (route.vary.length === 0) return JSON.stringify([route.fingerprint, host, path, query])
  const parts: (string | null)[] = [route.fingerprint, host, path, query]
  for (const name of route.vary) parts.push(headerValue(headers[name]))
  return JSON.stringify(parts)
}
