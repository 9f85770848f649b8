import type { OutgoingHttpHeaders } from 'node:http'
import type { HeaderBag } from './entry.js'

/** The body handed to `decide` for a response whose body was streamed (never stored or shared). */
export const STREAMED: unique symbol = Symbol('groupcache.streamed')

/** What a response is about to write, as it leaves every hook. */
export interface Outgoing {
  readonly status: number
  /** The headers actually written: those set on the response merged with those given to writeHead. */
  readonly headers: HeaderBag
  readonly body: Buffer | string | undefined | typeof STREAMED
}

/** Marks what decide() returns to write another whole response instead of the one held (stale-if-error). */
export const REPLACE: unique symbol = Symbol('groupcache.replace')

export interface Replacement {
  readonly [REPLACE]: true
  readonly status: number
  readonly headers: Record<string, string | string[]>
  readonly body: Buffer | undefined
}

/** Control over a response held by {@link holdUntilDecided}. */
export interface Held {
  /**
   * Writes this whole response now, in place of the one being held, and drops
   * everything written after it (a stale answer for a handler that overran its
   * time limit). Only before the held response went to `decide` (nothing of it
   * was written). `late` is called when the dropped response ends.
   */
  replace(replacement: Omit<Replacement, typeof REPLACE>, late: () => void): void
}

/** The part of Node's ServerResponse (HTTP/1) and Http2ServerResponse this needs. */
export interface RawResponse {
  statusCode: number
  getHeaders(): OutgoingHttpHeaders
  setHeader(name: string, value: number | string | readonly string[]): unknown
  writeHead(...args: never[]): unknown
  write(...args: never[]): unknown
  end(...args: never[]): unknown
}

type Call = () => void
type AnyFn = (...args: unknown[]) => unknown

/** The headers given to writeHead(status, [reason], [headers]), lower-cased. */
function headersOf(args: unknown[]): Record<string, unknown> | undefined {
  const last = typeof args[1] === 'string' ? args[2] : args[1]
  if (Array.isArray(last)) {
    const out: Record<string, unknown> = {}
    for (let i = 0; i + 1 < last.length; i += 2) out[String(last[i]).toLowerCase()] = last[i + 1]
    return out
  }
  if (last === null || typeof last !== 'object') return undefined
  const out: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(last)) out[name.toLowerCase()] = value
  return out
}

/**
 * writeHead's arguments without the headers `decided` sets: headers given to
 * writeHead win over setHeader's (Fastify passes all of its own there), and
 * the decided ones must win (a CDN's s-maxage merged into Cache-Control).
 */
function withoutHeaders(args: unknown[], decided: Record<string, string>): unknown[] {
  const at = typeof args[1] === 'string' ? 2 : 1
  const given = args[at]
  if (given === null || typeof given !== 'object' || Array.isArray(given)) return args
  const out: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(given)) if (!Object.hasOwn(decided, name.toLowerCase())) out[name] = value
  const copy = [...args]
  copy[at] = out
  return copy
}

function chunkBytes(chunk: unknown, encoding: unknown): Buffer | string | undefined {
  if (chunk === undefined || chunk === null || typeof chunk === 'function') return undefined
  if (typeof chunk === 'string') return typeof encoding === 'string' && encoding !== 'utf8' && encoding !== 'utf-8' ? Buffer.from(chunk, encoding as BufferEncoding) : chunk
  const bytes = chunk as Uint8Array
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/**
 * Holds a response's head until its body is known, so the decision to store
 * it is made on what is actually written — after every hook, whatever order
 * plugins were registered in (a session cookie added by a later hook, a
 * compression plugin's encoding and Vary). `decide` gets status, headers and
 * body and returns headers to add (Cache-Status, ETag); then everything held
 * is written in order. A body written in several chunks with a declared
 * Content-Length up to `collectBytes` is collected; any other multi-chunk body
 * is streamed: decided as STREAMED at its first chunk, never held.
 */
export function holdUntilDecided(
  res: RawResponse,
  collectBytes: number,
  decide: (out: Outgoing) => Promise<Record<string, string> | Replacement> | Record<string, string> | Replacement
): Held {
  const original = { writeHead: res.writeHead as AnyFn, write: res.write as AnyFn, end: res.end as AnyFn }
  /** Set once another response was written in place of this one: what is written now goes nowhere. */
  let dropped: (() => void) | undefined
  let head: unknown[] | undefined
  let queue: Call[] | undefined
  let chunks: (Buffer | string)[] | undefined
  const restore = () => {
    ;(res as unknown as Record<string, unknown>).writeHead = original.writeHead
    ;(res as unknown as Record<string, unknown>).write = original.write
    ;(res as unknown as Record<string, unknown>).end = original.end
  }
  const start = (body: Outgoing['body'], first: Call) => {
    queue = [first]
    const headers = { ...res.getHeaders(), ...headersOf(head ?? []) } as HeaderBag
    const status = head === undefined ? res.statusCode : Number(head[0])
    const flush = (extra: Record<string, string> | Replacement | undefined) => {
      restore()
      if (extra !== undefined && REPLACE in extra) {
        // What was held is dropped (only a whole body is ever replaced: nothing of it was written).
        queue = undefined
        const { status, headers, body } = extra
        original.writeHead.call(res, status, headers)
        original.end.call(res, body)
        return
      }
      if (extra !== undefined) for (const name of Object.keys(extra)) res.setHeader(name, extra[name] as string)
      if (head !== undefined) original.writeHead.apply(res, extra === undefined ? head : withoutHeaders(head, extra))
      const calls = queue as Call[]
      queue = undefined
      for (const call of calls) call()
    }
    let extra: Promise<Record<string, string> | Replacement> | Record<string, string> | Replacement
    try {
      extra = decide({ status, headers, body })
    } catch {
      return flush(undefined)
    }
    if (extra instanceof Promise) extra.then(flush, () => flush(undefined))
    else flush(extra)
  }
  const declaredLength = (): number => {
    const value = headersOf(head ?? [])?.['content-length'] ?? res.getHeaders()['content-length']
    return value === undefined ? Number.NaN : Number(value)
  }
  const wrappers = {} as Record<'writeHead' | 'write' | 'end', AnyFn>
  wrappers.writeHead = function (...args: unknown[]) {
    if (dropped === undefined) head = args
    return res
  }
  wrappers.write = function (...args: unknown[]) {
    if (dropped !== undefined) return drop(args, undefined)
    if (queue !== undefined) {
      queue.push(() => (res.write as AnyFn)(...args))
      return true
    }
    const length = declaredLength()
    if (chunks !== undefined || length <= collectBytes) {
      const bytes = chunkBytes(args[0], args[1])
      if (bytes !== undefined) (chunks ??= []).push(bytes)
      const callback = args.find((a) => typeof a === 'function') as Call | undefined
      if (callback !== undefined) process.nextTick(callback)
      return true
    }
    start(STREAMED, () => original.write.apply(res, args))
    return true
  }
  wrappers.end = function (...args: unknown[]) {
    if (dropped !== undefined) {
      drop(args, dropped)
      return res
    }
    if (queue !== undefined) {
      queue.push(() => (res.end as AnyFn)(...args))
      return res
    }
    const last = chunkBytes(args[0], args[1])
    if (chunks === undefined) {
      start(last, () => original.end.apply(res, args))
      return res
    }
    if (last !== undefined) chunks.push(last)
    const body = Buffer.concat(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : c)))
    const callback = args.find((a) => typeof a === 'function')
    start(body, () => original.end.apply(res, callback === undefined ? [body] : [body, callback]))
    return res
  }
  const wrap = () => Object.assign(res, wrappers)
  wrap()
  return {
    replace({ status, headers, body }, late) {
      // The layer asks only while the held response has not gone to decide (that marks its miss done): nothing was written.
      // Restored while writing: a response class may write through its own methods (light-my-request's end calls write).
      restore()
      original.writeHead.call(res, status, headers)
      original.end.call(res, body)
      dropped = late
      wrap()
    }
  }
}

/** A write or end of a response replaced by another: its callback still runs, as if written. */
function drop(args: unknown[], late: (() => void) | undefined): true {
  const callback = args.find((a) => typeof a === 'function') as Call | undefined
  if (callback !== undefined) process.nextTick(callback)
  late?.()
  return true
}
