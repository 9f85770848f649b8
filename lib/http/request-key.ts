import type { IncomingHttpHeaders } from 'node:http'
import type { CompiledRoute } from './route.js'

/** Decodes one query component; a malformed one is kept raw, wrapped in an array so it never equals a decoded value. */
function decode(text: string): string | [string] {
  if (!/[%+]/.test(text)) return text
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '))
  } catch {
    return [text]
  }
}

/**
 * A raw query string in canonical form, for adapters that cannot hand over
 * the framework's parsed query: params decoded, sorted by name (a stable
 * sort, so `?a=2&a=1` stays distinct from `?a=1&a=2`), filtered by the
 * route's allowlist. A component with malformed percent-encoding is kept raw
 * and marked as such: `?q=%zz+a` and `?q=%25zz%2Ba` never share a key.
 */
export function normalizeQuery(raw: string, allow: true | ReadonlySet<string>): string {
  const pairs: [string | [string], string | [string]][] = []
  for (const part of raw.split('&')) {
    if (part === '') continue
    const eq = part.indexOf('=')
    const name = decode(eq < 0 ? part : part.slice(0, eq))
    if (allow !== true && (typeof name !== 'string' || !allow.has(name))) continue
    pairs.push([name, eq < 0 ? '' : decode(part.slice(eq + 1))])
  }
  if (pairs.length === 0) return ''
  const nameOf = (pair: (typeof pairs)[number]) => (typeof pair[0] === 'string' ? pair[0] : pair[0][0])
  pairs.sort((a, b) => (nameOf(a) < nameOf(b) ? -1 : nameOf(a) > nameOf(b) ? 1 : 0))
  return JSON.stringify(pairs)
}

/**
 * One parsed query value in a form no other value shares: strings as
 * themselves, arrays (repeated params, order kept) and nested objects (qs-style
 * parsers) tagged, other types (custom parsers) tagged with their type.
 */
function canonicalValue(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return value
  if (depth > 20) return ['deep']
  if (Array.isArray(value)) return ['a', ...value.map((v) => canonicalValue(v, depth + 1))]
  if (value !== null && typeof value === 'object') {
    const out: unknown[] = ['o']
    for (const name of Object.keys(value).sort()) out.push(name, canonicalValue((value as Record<string, unknown>)[name], depth + 1))
    return out
  }
  return ['t', typeof value, String(value)]
}

/**
 * The query as the framework parsed it for the handler (README "HTTP rules"), in
 * canonical form: params sorted by name, filtered by the route's allowlist.
 * Two queries the handler sees differently never share a key, and two that
 * it sees alike (`?b=1&a=2`, `?a=2&b=1`) do.
 */
export function canonicalQuery(parsed: unknown, allow: true | ReadonlySet<string>): string {
  if (parsed === null || typeof parsed !== 'object') return ''
  const names = Object.keys(parsed).filter((name) => allow === true || allow.has(name))
  if (names.length === 0) return ''
  names.sort()
  const pairs: unknown[] = []
  for (const name of names) pairs.push(name, canonicalValue((parsed as Record<string, unknown>)[name], 0))
  return JSON.stringify(pairs)
}

/**
 * `Accept-Encoding` as the set of codings it accepts (q=0 removed), sorted:
 * `gzip, deflate, br` and `br;q=0.9, gzip, deflate` select the same variants.
 */
export function acceptedCodings(value: string): string {
  const codings = new Set<string>()
  for (const part of value.split(',')) {
    const [coding = '', ...params] = part.split(';')
    const name = coding.trim().toLowerCase()
    if (name === '') continue
    const q = params.map((p) => p.trim().toLowerCase()).find((p) => p.startsWith('q='))
    if (q !== undefined && !(Number(q.slice(2)) > 0)) continue
    codings.add(name)
  }
  return [...codings].sort().join(',')
}

/** The value of a header the key varies on, normalized (RFC 9111 §4.1 allows it); null when absent. */
export function varyValue(name: string, value: string | string[] | undefined): string | null {
  if (value === undefined) return null
  const joined = Array.isArray(value) ? value.join(', ') : value
  if (name === 'accept-encoding') return acceptedCodings(joined)
  return joined.trim().replace(/\s*,\s*/g, ', ')
}

/** What the request key is built from; adapters give what their framework resolved. */
export interface KeyParts {
  /** Path and query as received. */
  readonly url: string
  readonly headers: IncomingHttpHeaders
  /** The host as the framework resolved it (trustProxy, HTTP/2 :authority); the Host header otherwise. */
  readonly host?: string | undefined
  /** The parsed query as the handler sees it; without it the raw query string is normalized. */
  readonly query?: unknown
}

/**
 * The request key (README "HTTP rules"): the route's config and constraints fingerprint,
 * the host (lower-cased), the path, the canonical query and the normalized
 * values of the headers the route varies on (declared, then learned from its
 * responses), JSON-encoded so no two requests share a key by accident.
 */
export function requestKey(route: CompiledRoute, req: KeyParts): string {
  const { url } = req
  const q = url.indexOf('?')
  const path = q < 0 ? url : url.slice(0, q)
  let query = ''
  if (route.query !== false) {
    if (req.query !== undefined) query = canonicalQuery(req.query, route.query)
    else if (q >= 0) query = normalizeQuery(url.slice(q + 1), route.query)
  }
  const host = (req.host ?? req.headers.host ?? '').toLowerCase()
  const learned = route.learnedVary
  if (route.vary.length === 0 && learned.length === 0) return JSON.stringify([route.fingerprint, host, path, query])
  const parts: (string | null)[] = [route.fingerprint, host, path, query]
  for (const name of route.vary) parts.push(varyValue(name, req.headers[name]))
  if (learned.length > 0) {
    // Learned names are marked off from declared ones so a key never depends on where the list splits.
    parts.push('|')
    for (const name of learned) parts.push(name, varyValue(name, req.headers[name]))
  }
  return JSON.stringify(parts)
}
