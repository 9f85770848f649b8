import { createHash } from 'node:crypto'
import { GroupcacheError } from '../errors.js'

/**
 * Turning a readable group name (`user:42`, `blogId=7,userId=42`, `*` for
 * the epoch) into a key each CDN accepts, the same way for the response
 * header and for the purge, so a purge always names what the header named.
 *
 * A key is `<namespace>/<name>`; the namespace alone is the deployment-wide
 * key every response carries, so purging it (a `clear()`, name `*`) drops
 * everything this deployment put in the CDN. Characters outside a vendor's
 * set are percent-escaped (UTF-8, `%XX`), which is reversible; a key longer
 * than the vendor allows keeps a readable head and ends in `~` plus 16
 * base64url characters of its SHA-256 (`~` is always escaped elsewhere, so a
 * hashed key never equals an escaped one).
 */

/** A CDN's or proxy's rules for one tag header. */
export interface VendorRules {
  /** Response header carrying the keys. */
  readonly header: string
  /** Characters passed through unescaped (every other character is `%XX`). Never `%` or `~`. */
  readonly safe: RegExp
  /** Longest key we emit, in characters (keys are ASCII after escaping). */
  readonly maxKeyLength: number
  /** Longest header value the vendor accepts, in characters. */
  readonly maxHeaderLength: number
  /** Renders the header value from keys. */
  render(keys: readonly string[]): string
}

const PRINTABLE_NO_SPACE = /[\x21-\x7e]/

/**
 * Documented limits, per vendor:
 * - `cacheGroups`: RFC 9875 `Cache-Groups`, a structured-fields List of
 *   Strings; caches must support at least 32 groups of at least 32
 *   characters each, so keys are kept within that. `"`, `\` and `,` are
 *   escaped too, so a string never needs a backslash escape and a proxy (our
 *   VCL) can split the field on commas.
 * - `xkey`: Varnish vmod xkey, keys separated by spaces; the same alphabet and
 *   lengths as `cacheGroups`, so one VCL can purge by either header's keys.
 * - `fastly`: `Surrogate-Key`, space-separated; a key at most 1024 bytes, the
 *   header at most 16384 bytes.
 * - `cloudflare`: `Cache-Tag`, comma-separated; a tag at most 1024
 *   characters, the header at most 16 KB. Tags are case-insensitive there,
 *   so two names differing only in case purge each other (more, never less).
 * - `akamai`: `Edge-Cache-Tag`, comma-separated; at most 128 tags of at most
 *   128 characters, from alphanumerics and `!#$%&'+./^_\`|~-` (so `:` is
 *   escaped); the header kept within 8192 characters.
 *
 * A response carries at most {@link MAX_KEYS_PER_RESPONSE} keys (RFC 9875's
 * 32, the deployment key included) in every header, so Fastly's and
 * Cloudflare's keys are kept to 511 characters: 32 of them, with separators,
 * fit their 16384-character headers.
 */
export const MAX_KEYS_PER_RESPONSE = 32

export const VENDORS = {
  cacheGroups: {
    header: 'cache-groups',
    safe: /[\x21\x23-\x24\x26-\x2b\x2d-\x5b\x5d-\x7d]/,
    maxKeyLength: 32,
    maxHeaderLength: 8192,
    render: (keys) => keys.map((k) => `"${k}"`).join(', ')
  },
  xkey: {
    header: 'xkey',
    safe: /[\x21\x23-\x24\x26-\x2b\x2d-\x5b\x5d-\x7d]/,
    maxKeyLength: 32,
    maxHeaderLength: 8192,
    render: (keys) => keys.join(' ')
  },
  fastly: {
    header: 'surrogate-key',
    safe: PRINTABLE_NO_SPACE,
    maxKeyLength: 511,
    maxHeaderLength: 16384,
    render: (keys) => keys.join(' ')
  },
  cloudflare: {
    header: 'cache-tag',
    safe: /[\x21\x23-\x24\x26-\x2b\x2d-\x7d]/,
    maxKeyLength: 511,
    maxHeaderLength: 16384,
    render: (keys) => keys.join(',')
  },
  akamai: {
    header: 'edge-cache-tag',
    safe: /[A-Za-z0-9!#$&'+./^_`|-]/,
    maxKeyLength: 128,
    maxHeaderLength: 8192,
    render: (keys) => keys.join(',')
  }
} as const satisfies Record<string, VendorRules>

export type Vendor = keyof typeof VENDORS

const NAMESPACE = /^[A-Za-z0-9._-]{1,32}$/
const HASH_LENGTH = 16

/** Checks a deployment namespace: it is a key in every vendor's alphabet as it is. */
export function checkNamespace(namespace: unknown, option = 'cdn.namespace'): string {
  if (typeof namespace !== 'string' || !NAMESPACE.test(namespace)) {
    throw new GroupcacheError('GC_INVALID_OPTION', `option ${option} must be 1 to 32 characters from A-Z a-z 0-9 . _ -, got ${JSON.stringify(namespace) ?? String(namespace)}`)
  }
  return namespace
}

/** Percent-escapes every character outside `safe` (as UTF-8 bytes). */
export function escapeKey(text: string, safe: RegExp): string {
  let out = ''
  for (const char of text) {
    if (safe.test(char) && char !== '%' && char !== '~') out += char
    else for (const byte of Buffer.from(char, 'utf8')) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}

/** Reverses {@link escapeKey} (not for hashed keys, which are one-way). */
export function unescapeKey(key: string): string {
  return decodeURIComponent(key)
}

/** Cuts an escaped key to at most `length` characters without splitting a `%XX`. */
function head(escaped: string, length: number): string {
  const cut = escaped.slice(0, length)
  const percent = cut.lastIndexOf('%', cut.length - 1)
  return percent >= 0 && percent > cut.length - 3 ? cut.slice(0, percent) : cut
}

/** The key a vendor gets for a readable group name (`*` is the deployment key). */
export function vendorKey(vendor: Vendor, namespace: string, name: string): string {
  if (name === '*') return namespace
  const rules: VendorRules = VENDORS[vendor]
  const escaped = `${namespace}/${escapeKey(name, rules.safe)}`
  if (escaped.length <= rules.maxKeyLength) return escaped
  const hash = createHash('sha256').update(`${namespace}/${name}`).digest('base64url').slice(0, HASH_LENGTH)
  return `${head(escaped, rules.maxKeyLength - HASH_LENGTH - 1)}~${hash}`
}

/**
 * The keys a vendor gets for names: each name's key, without duplicates, and
 * the deployment key last (present once).
 */
export function vendorKeys(vendor: Vendor, namespace: string, names: readonly string[]): string[] {
  const keys = new Set<string>()
  for (const name of names) if (name !== '*') keys.add(vendorKey(vendor, namespace, name))
  keys.delete(namespace)
  keys.add(namespace)
  return [...keys]
}
