import { deserialize, serialize } from 'node:v8'
import { GroupcacheError, GroupcacheTypeError } from '../errors.js'

/**
 * Function-cache values are stored with V8's structured serializer: JSON types,
 * Date, Buffer, bigint, Map, Set and typed arrays round-trip, and a value that
 * cannot be cloned (a function, a symbol) is an error at `set`, not a corrupt
 * entry. Class instances come back as plain objects.
 */
const FORMAT = 2

export function encodeValue(value: unknown, where: string): Buffer {
  if (value === undefined) {
    throw new GroupcacheError('GC_NOT_SERIALIZABLE', `${where}: undefined cannot be cached (a get would not tell it from a miss); store null instead`)
  }
  let body: Buffer
  try {
    body = serialize(value)
  } catch (err) {
    throw new GroupcacheError('GC_NOT_SERIALIZABLE', `${where}: the value cannot be stored: ${(err as Error).message}`, { cause: err })
  }
  return Buffer.concat([Buffer.from([FORMAT]), body])
}

/**
 * The value, or undefined for bytes that are not a value entry or cannot be
 * read here. Every call returns a value of its own: Node's deserializer makes
 * Buffers and typed arrays views into the bytes it reads, and those bytes may
 * be the entry an in-process store holds, so they are copied first.
 */
export function decodeValue(bytes: Buffer): unknown {
  if (bytes[0] !== FORMAT) return undefined
  try {
    return deserialize(new Uint8Array(bytes.subarray(1)))
  } catch {
    return undefined
  }
}

/**
 * Canonical text of a value that is part of a function-cache key (magic #2),
 * injective: two values a function could tell apart never share a text.
 * Every value is tagged with its type (`1`, `'1'`, `[1]` and `new Number(1)`
 * differ, and so do `0` and `-0`); object keys are sorted; `Set` elements and
 * `Map` entries are sorted by their own text (a set is a set: insertion order
 * does not count); typed arrays are tagged by kind and encode the bytes of the
 * view; `URL` is its href, `RegExp` its source and flags (not `lastIndex`),
 * `Date` its time. What cannot be encoded faithfully (class instances,
 * functions, symbols, weak collections, promises, shared memory, cycles) is a
 * GroupcacheTypeError naming the argument path, never a silent collision.
 */
export function canonicalText(value: unknown, path: string): string {
  return JSON.stringify(tag(value, path, []))
}

/** {@link canonicalText} of positional arguments, the first of them at index `first`. */
export function canonicalArguments(args: readonly unknown[], first: number): string {
  return JSON.stringify(['a', args.map((v, i) => tag(v, `arguments[${i + first}]`, []))])
}

function reject(path: string, why: string): GroupcacheTypeError {
  return new GroupcacheTypeError('GC_INVALID_VALUE', `${path} cannot be part of a cache key: ${why}`)
}

/** The kinds of ArrayBuffer views, by their tag; each must have exactly its intrinsic prototype. */
const VIEW_PROTOTYPES = new Map<string, object>(
  [
    Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
    Float32Array, Float64Array, BigInt64Array, BigUint64Array, DataView
  ].map((ctor) => [ctor.name, ctor.prototype])
)

function fieldPath(path: string, key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`
}

function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** `ancestors` holds the objects being encoded above this one: meeting one again is a cycle. */
function tag(value: unknown, path: string, ancestors: object[]): unknown {
  switch (typeof value) {
    case 'string':
      return ['s', value]
    case 'number':
      if (Object.is(value, -0)) return ['n', '-0']
      return ['n', Number.isFinite(value) ? value : String(value)]
    case 'boolean':
      return ['b', value]
    case 'bigint':
      return ['i', String(value)]
    case 'undefined':
      return ['u']
    case 'object':
      if (value === null) return ['z']
      if (ancestors.includes(value)) throw reject(path, 'it is a cycle (it contains itself)')
      ancestors.push(value)
      try {
        return tagObject(value, path, ancestors)
      } finally {
        ancestors.pop()
      }
    default:
      throw reject(path, `it is a ${typeof value}`)
  }
}

function tagObject(value: object, path: string, ancestors: object[]): unknown {
  const proto: unknown = Object.getPrototypeOf(value)
  if (proto === Object.prototype || proto === null) {
    if (Object.getOwnPropertySymbols(value).length > 0) throw reject(path, 'it is an object with symbol keys')
    const record = value as Record<string, unknown>
    return ['o', Object.keys(record).sort().map((k) => [k, tag(record[k], fieldPath(path, k), ancestors)])]
  }
  if (proto === Array.prototype) return tagArray(value as unknown[], path, ancestors)
  if (Buffer.isBuffer(value)) return ['x', value.toString('base64')]
  if (ArrayBuffer.isView(value)) {
    const kind = Object.prototype.toString.call(value).slice(8, -1)
    if (VIEW_PROTOTYPES.get(kind) !== proto) throw reject(path, `it is a ${describeInstance(value)}`)
    if (!(value.buffer instanceof ArrayBuffer)) throw reject(path, `it is a ${kind} on shared memory (its bytes can change under the key)`)
    return ['t', kind, Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')]
  }
  if (proto === ArrayBuffer.prototype) return ['ab', Buffer.from(value as ArrayBuffer).toString('base64')]
  if (proto === Date.prototype) {
    const time = (value as Date).getTime()
    return ['d', Number.isNaN(time) ? 'invalid' : (value as Date).toISOString()]
  }
  if (proto === Set.prototype) {
    const elements = [...(value as Set<unknown>)].map((v, i) => JSON.stringify(tag(v, `${path}.values()[${i}]`, ancestors)))
    return ['S', elements.sort(byText)]
  }
  if (proto === Map.prototype) {
    const entries = [...(value as Map<unknown, unknown>)].map(([k, v], i) =>
      JSON.stringify([tag(k, `${path}.entries()[${i}][0]`, ancestors), tag(v, `${path}.entries()[${i}][1]`, ancestors)])
    )
    return ['m', entries.sort(byText)]
  }
  if (proto === URL.prototype) return ['url', (value as URL).href]
  if (proto === RegExp.prototype) return ['re', (value as RegExp).source, (value as RegExp).flags]
  if (proto === Number.prototype || proto === String.prototype || proto === Boolean.prototype || proto === BigInt.prototype || proto === Symbol.prototype) {
    return ['box', tag((value as { valueOf(): unknown }).valueOf(), `${path}.valueOf()`, ancestors)]
  }
  throw reject(path, `it is a ${describeInstance(value)} (pass a plain object, an array or a value of a supported type)`)
}

function tagArray(array: unknown[], path: string, ancestors: object[]): unknown {
  const items: unknown[] = []
  let present = 0
  for (let i = 0; i < array.length; i++) {
    if (i in array) {
      present++
      items.push(tag(array[i], `${path}[${i}]`, ancestors))
    } else {
      items.push(['_'])
    }
  }
  // Fields beside the indices would otherwise be dropped from the key.
  if (Object.keys(array).length !== present || Object.getOwnPropertySymbols(array).length > 0) {
    throw reject(path, 'it is an array with fields besides its elements')
  }
  return ['a', items]
}

function describeInstance(value: object): string {
  const ctor = (value as { constructor?: { name?: unknown } }).constructor
  const name = typeof ctor === 'function' && typeof ctor.name === 'string' && ctor.name !== '' ? ctor.name : 'class'
  return `${name} instance`
}
