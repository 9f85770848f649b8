import { digest } from '../core/encoding.js'

/** Response headers as frameworks hand them over (Node's OutgoingHttpHeaders). */
export type HeaderBag = Readonly<Record<string, number | string | readonly string[] | undefined>>

/** Header values as written on a hit. */
export type StoredHeaders = Record<string, string | string[]>

/** A cached response, decoded. Shared between hits: never mutate. */
export interface Entry {
  readonly status: number
  /** Headers to write on a hit (stored headers plus the ETag). */
  readonly headers: StoredHeaders
  /** Headers to write on a 304 (RFC 9110 §15.4.5). */
  readonly notModifiedHeaders: StoredHeaders
  readonly etag: string
  /** Epoch milliseconds when stored. */
  readonly storedAt: number
  readonly ttlMs: number
  readonly body: Buffer
}

/** Never stored: hop-by-hop (RFC 9110 §7.6.1), recomputed per response, or per client. */
const NOT_STORED = new Set([
  'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer',
  'transfer-encoding', 'upgrade', 'date', 'set-cookie', 'content-length', 'age', 'cache-status'
])
const NOT_MODIFIED_KEPT = new Set(['cache-control', 'content-location', 'expires', 'vary', 'etag'])

/** Strong ETag from the body bytes. */
export function computeEtag(body: Buffer): string {
  return `"${digest(body)}"`
}

/** Headers worth keeping from a response, lower-cased. */
export function storableHeaders(headers: HeaderBag): StoredHeaders {
  const names = Object.keys(headers)
  const connection = names.find((n) => n.toLowerCase() === 'connection')
  const connectionNamed = connection === undefined ? undefined : connectionTokens(headers[connection])
  const out: StoredHeaders = {}
  for (const name of names) {
    const lower = name.toLowerCase()
    const value = headers[name]
    if (value === undefined || NOT_STORED.has(lower) || connectionNamed?.has(lower)) continue
    out[lower] = Array.isArray(value) ? value.map(String) : String(value)
  }
  return out
}

function connectionTokens(value: HeaderBag[string]): Set<string> {
  return new Set(String(value).split(',').map((t) => t.trim().toLowerCase()))
}

export function makeEntry(status: number, headers: StoredHeaders, body: Buffer, storedAt: number, ttlMs: number): Entry {
  const etag = typeof headers.etag === 'string' ? headers.etag : computeEtag(body)
  const withEtag: StoredHeaders = { ...headers, etag }
  const notModifiedHeaders: StoredHeaders = {}
  for (const name of Object.keys(withEtag)) {
    if (NOT_MODIFIED_KEPT.has(name)) notModifiedHeaders[name] = withEtag[name] as string | string[]
  }
  return { status, headers: withEtag, notModifiedHeaders, etag, storedAt, ttlMs, body }
}

/**
 * Entry bytes: a format byte, a 4-byte big-endian length, a small JSON header
 * (status, headers, times), then the body as raw bytes — no base64 or JSON
 * wrapping of the body, which is most of the entry.
 */
const FORMAT = 1

export function encodeEntry(entry: Entry): Buffer {
  const head = Buffer.from(JSON.stringify([entry.status, entry.headers, entry.storedAt, entry.ttlMs]))
  // Not allocUnsafe: a small Buffer from Node's shared pool would keep its whole
  // 8 KB slab alive for as long as the entry is cached.
  const out = Buffer.allocUnsafeSlow(5 + head.length + entry.body.length)
  out[0] = FORMAT
  out.writeUInt32BE(head.length, 1)
  head.copy(out, 5)
  entry.body.copy(out, 5 + head.length)
  return out
}

/**
 * Decoded entries, owned by one HttpCache. By identity of their bytes for
 * the memory store (it hands back the same Buffer on every hit), so each entry
 * is decoded once. Redis hands back fresh Buffers, so recent entries are also
 * kept by entry key with a copy of their bytes (a reply may be a slice of a
 * large socket buffer): a hit then costs a byte comparison instead of a JSON
 * parse. An entry key embeds the versions and the bytes are compared, so this
 * never answers with other content than the store's. Bounded by bytes (the
 * copies held), least recently used first out.
 */
export class EntryDecoder {
  readonly #byBytes = new WeakMap<Buffer, Entry>()
  readonly #byKey = new Map<string, { bytes: Buffer; entry: Entry }>()
  #bytes = 0

  /**
   * @param maxBytes most bytes of entry copies held for the by-key memo; an
   * entry larger than a quarter of it is decoded every time instead.
   */
  constructor(readonly maxBytes: number) {}

  /** Bytes currently held by the by-key memo. */
  get heldBytes(): number {
    return this.#bytes
  }

  /** Decodes entry bytes; undefined for bytes this version cannot read (treated as a miss). */
  decode(bytes: Buffer, key?: string): Entry | undefined {
    const cached = this.#byBytes.get(bytes)
    if (cached !== undefined) return cached
    if (key === undefined) {
      const entry = decodeEntry(bytes)
      if (entry !== undefined) this.#byBytes.set(bytes, entry)
      return entry
    }
    const last = this.#byKey.get(key)
    if (last !== undefined && last.bytes.equals(bytes)) {
      this.#byKey.delete(key)
      this.#byKey.set(key, last)
      return last.entry
    }
    if (bytes.length * 4 > this.maxBytes) return decodeEntry(bytes)
    const copy = Buffer.from(bytes)
    const entry = decodeEntry(copy)
    if (entry === undefined) return undefined
    if (last !== undefined) this.#forget(key, last.bytes.length)
    this.#byKey.set(key, { bytes: copy, entry })
    this.#bytes += copy.length
    for (const [oldest, held] of this.#byKey) {
      if (this.#bytes <= this.maxBytes) break
      this.#forget(oldest, held.bytes.length)
    }
    return entry
  }

  #forget(key: string, length: number): void {
    this.#byKey.delete(key)
    this.#bytes -= length
  }
}

/** Decodes entry bytes, with no memo; undefined for bytes this version cannot read. */
export function decodeEntry(bytes: Buffer): Entry | undefined {
  return parseEntry(bytes)
}

function parseEntry(bytes: Buffer): Entry | undefined {
  if (bytes.length < 5 || bytes[0] !== FORMAT) return undefined
  const headLength = bytes.readUInt32BE(1)
  if (5 + headLength > bytes.length) return undefined
  let head: unknown
  try {
    head = JSON.parse(bytes.toString('utf8', 5, 5 + headLength))
  } catch {
    return undefined
  }
  if (!Array.isArray(head) || head.length !== 4) return undefined
  const [status, headers, storedAt, ttlMs] = head as [number, StoredHeaders, number, number]
  return makeEntry(status, headers, bytes.subarray(5 + headLength), storedAt, ttlMs)
}

/**
 * The Vary of a hit: the live response's tokens (set by hooks that ran on
 * this request, such as CORS's `Origin`) plus the stored ones not among them.
 */
export function mergeVary(live: HeaderBag[string], stored: string | string[]): string {
  const seen = new Set<string>()
  const out: string[] = []
  for (const value of [live, stored]) {
    if (value === undefined) continue
    for (const raw of (Array.isArray(value) ? value.join(',') : String(value)).split(',')) {
      const token = raw.trim()
      if (token !== '' && !seen.has(token.toLowerCase())) {
        seen.add(token.toLowerCase())
        out.push(token)
      }
    }
  }
  return out.join(', ')
}
