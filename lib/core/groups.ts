import { GroupcacheError, GroupcacheTypeError } from '../errors.js'
import { describe, valueToString, type MappingValue } from './encoding.js'

/** Values a group is resolved against: route params, or a function-cache call's values. */
export type GroupValues = Readonly<Record<string, unknown>>

/**
 * What a group function can read of the request without naming a framework:
 * its headers, each possibly absent. Fastify's and Express's requests both fit.
 */
export interface GroupRequest {
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
}

/**
 * A group computed by code: gets the values (route params) and, for HTTP routes,
 * the framework request; there is no request in the function cache nor in
 * `bump()` calls made outside a request. Returns the group's mapping.
 *
 * Written as a method type on purpose: its parameters are then checked both
 * ways, so a function may annotate them with narrower types, e.g. the route's
 * params or `FastifyRequest`, to read more than the headers.
 */
export type GroupFunction = {
  group(values: GroupValues, request?: GroupRequest): Readonly<Record<string, MappingValue>>
}['group']

/**
 * A group definition, in one of five forms (README "Group definitions"):
 * - `'posts'`: a name → `{ group: 'posts' }`
 * - `'user:userId'`: a name with value params → `{ group: 'user', userId: '42' }`
 * - `['userId', 'blogId']`: a list of params → `{ userId: '42', blogId: '7' }`
 * - `{ id: 'userId' }`: a remap, new name → param name → `{ id: '42' }`
 * - a {@link GroupFunction} returning the mapping
 */
export type GroupDef = string | readonly string[] | Readonly<Record<string, string>> | GroupFunction

/** One key of a mapping: either a constant or the value of a param. */
interface Slot {
  readonly key: string
  readonly constant?: string
  readonly param?: string
}

/**
 * A group definition checked and turned into something cheap to resolve: the
 * mapping's keys are sorted once here, so resolving is one pass over the values.
 */
export interface CompiledGroup {
  /** The definition as written, for messages. */
  readonly label: string
  /** Params the definition reads; `null` for a function (not known ahead). */
  readonly params: readonly string[] | null
  /** Canonical encoding of the mapping (see encodeMapping) for these values. */
  encode(values: GroupValues, request?: unknown): string
}

export function compileGroup(def: unknown, where = ''): CompiledGroup {
  if (typeof def === 'string') return compileName(def, where)
  if (typeof def === 'function') return compileFunction(def as GroupFunction)
  if (Array.isArray(def)) return compileList(def, where)
  if (def !== null && typeof def === 'object' && Object.getPrototypeOf(def) === Object.prototype) {
    return compileRemap(def as Record<string, unknown>, where)
  }
  throw invalid(where, String(def), `must be a string, a list of params, a remap object or a function, got ${describe(def)}`)
}

function invalid(where: string, label: string, why: string): GroupcacheError {
  return new GroupcacheError('GC_INVALID_GROUP', `${where}group ${label}: ${why}`)
}

function compileName(def: string, where: string): CompiledGroup {
  const [name = '', ...params] = def.split(':')
  if (name.trim() === '') throw invalid(where, JSON.stringify(def), 'the group name is empty')
  checkParams(params, def, where)
  if (params.includes('group')) {
    throw invalid(where, def, 'a value param cannot be called "group": that key holds the group name')
  }
  const slots: Slot[] = [{ key: 'group', constant: name }, ...params.map((p) => ({ key: p, param: p }))]
  return fromSlots(def, params, slots)
}

function compileList(def: readonly unknown[], where: string): CompiledGroup {
  const label = JSON.stringify(def)
  if (def.length === 0) throw invalid(where, label, 'a list of params must name at least one param')
  for (const p of def) if (typeof p !== 'string') throw invalid(where, label, `list entries must be param names (strings), got ${describe(p)}`)
  const params = def as string[]
  checkParams(params, label, where)
  return fromSlots(label, params, params.map((p) => ({ key: p, param: p })))
}

function compileRemap(def: Record<string, unknown>, where: string): CompiledGroup {
  const label = JSON.stringify(def)
  const entries = Object.entries(def)
  if (entries.length === 0) throw invalid(where, label, 'a remap must map at least one key')
  const slots: Slot[] = []
  for (const [key, param] of entries) {
    if (typeof param !== 'string' || param === '') {
      throw invalid(where, label, `remap value for "${key}" must be a param name, got ${describe(param)}`)
    }
    slots.push({ key, param })
  }
  return fromSlots(label, [...new Set(slots.map((s) => s.param as string))], slots)
}

function checkParams(params: readonly string[], label: string, where: string): void {
  const seen = new Set<string>()
  for (const p of params) {
    if (p === '') throw invalid(where, label, 'a param name is empty')
    if (seen.has(p)) throw invalid(where, label, `param "${p}" is named twice`)
    seen.add(p)
  }
}

function fromSlots(label: string, params: readonly string[], slots: Slot[]): CompiledGroup {
  // Keys are unique within a definition, so no two compare equal.
  slots.sort((a, b) => (a.key < b.key ? -1 : 1))
  if (params.length === 0) {
    const encoded = JSON.stringify(slots.map((s) => [s.key, s.constant]))
    return { label, params, encode: () => encoded }
  }
  return {
    label,
    params,
    encode(values) {
      const pairs: [string, string][] = new Array(slots.length)
      for (let i = 0; i < slots.length; i++) {
        const slot = slots[i] as Slot
        pairs[i] = [slot.key, slot.param === undefined ? (slot.constant as string) : paramValue(values, slot.param, label)]
      }
      return JSON.stringify(pairs)
    }
  }
}

function paramValue(values: GroupValues, param: string, label: string): string {
  const value = values[param]
  if (value === undefined) {
    const have = Object.keys(values)
    throw new GroupcacheTypeError(
      'GC_MISSING_VALUE',
      `group ${label}: no value for param "${param}" (values given: ${have.length ? have.join(', ') : 'none'})`
    )
  }
  return valueToString(value, label, param)
}

function compileFunction(fn: GroupFunction): CompiledGroup {
  const label = `function ${fn.name || '(anonymous)'}`
  return {
    label,
    params: null,
    encode(values, request) {
      // The adapters pass their framework's request (a GroupRequest); other callers none.
      const mapping = fn(values, request as GroupRequest | undefined)
      if (mapping === null || typeof mapping !== 'object' || Array.isArray(mapping)) {
        throw new GroupcacheTypeError('GC_INVALID_VALUE', `group ${label}: must return a mapping object, returned ${describe(mapping)}`)
      }
      const keys = Object.keys(mapping).sort()
      const pairs: [string, string][] = keys.map((k) => [k, valueToString(mapping[k], label, k)])
      return JSON.stringify(pairs)
    }
  }
}

/** Params a compiled group reads that are not among `available`. */
export function missingParams(group: CompiledGroup, available: readonly string[]): string[] {
  return group.params === null ? [] : group.params.filter((p) => !available.includes(p))
}

/**
 * A readable name for a group identity, from its canonical encoding (the JSON
 * of sorted `[key, value]` pairs): `{ group: 'user', userId: '42' }` →
 * `user:42`; a mapping without `group` → `blogId=7,userId=42`. Used in logs,
 * events and CDN keys, never in store keys (it is not injective: `user:42`
 * may also name `{ group: 'user', id: '42' }`, so a purge by name can reach
 * more than one group, never fewer).
 */
export function groupName(encoded: string): string {
  const pairs = JSON.parse(encoded) as [string, string][]
  const named = pairs.find(([k]) => k === 'group')
  if (named !== undefined) {
    let name = named[1]
    for (const [k, v] of pairs) if (k !== 'group') name += `:${v}`
    return name
  }
  return pairs.map(([k, v]) => `${k}=${v}`).join(',')
}
