import { match, parse, type MatchFunction, type Token } from 'path-to-regexp'
import { GroupcacheError } from './errors.js'
import type { GroupValues } from './core/groups.js'

/** Fastify (find-my-way) syntax that path-to-regexp 8+ does not accept, with what to write instead. */
const FASTIFY_ONLY: [RegExp, string][] = [
  [/:[^/{}]*\?/, 'optional params are written {/:name} in path-to-regexp (Fastify\'s :name? is not supported)'],
  [/:[A-Za-z_$][\w$]*\(/, 'regexp params (Fastify\'s :name(^\\d+)) are not supported by path-to-regexp; match broadly and validate in the handler'],
  [/\*(?![A-Za-z_$])/, 'a wildcard needs a name in path-to-regexp: *splat (Fastify\'s bare * is not supported)']
]

function invalidPattern(pattern: string, reason: string, hint?: string): GroupcacheError {
  return new GroupcacheError('GC_INVALID_PATTERN', `groupcache: route pattern ${JSON.stringify(pattern)}: ${reason}${hint ? ` — ${hint}` : ''}`)
}

function tokenParams(tokens: readonly Token[], out: string[]): string[] {
  for (const token of tokens) {
    if (token.type === 'param' || token.type === 'wildcard') out.push(token.name)
    else if (token.type === 'group') tokenParams(token.tokens, out)
  }
  return out
}

/** The params of an Express (path-to-regexp) pattern; a GC_INVALID_PATTERN error with path-to-regexp's reason and a hint for Fastify syntax. */
export function expressPatternParams(pattern: string): string[] {
  try {
    return tokenParams(parse(pattern).tokens, [])
  } catch (err) {
    const hint = FASTIFY_ONLY.find(([re]) => re.test(pattern))?.[1]
    throw invalidPattern(pattern, (err as Error).message, hint)
  }
}

/** A cached route of a `middleware({ routes })` table, matched before the router runs. */
export interface TableRoute {
  readonly pattern: string
  readonly params: readonly string[]
  readonly config: unknown
  /** Params of a matching path (wildcard segments joined with `/`), or undefined. */
  match(path: string): GroupValues | undefined
}

/**
 * Compiles `{ 'GET /users/:userId': {...} }`. Only GET is cached (HEAD is
 * answered from the GET entry); a key without a method means GET.
 */
export function compileTable(routes: Record<string, unknown>): TableRoute[] {
  if (routes === null || typeof routes !== 'object' || Array.isArray(routes)) {
    throw new GroupcacheError('GC_INVALID_OPTION', 'groupcache: option routes must be an object of "GET /pattern" keys to route cache options')
  }
  return Object.keys(routes).map((key) => {
    const m = /^(?:([A-Za-z]+)\s+)?(\S+)$/.exec(key.trim())
    if (m === null) throw invalidPattern(key, 'expected "GET /pattern"')
    const method = (m[1] ?? 'GET').toUpperCase()
    const pattern = m[2] as string
    if (method !== 'GET') throw invalidPattern(key, `only GET routes are cached (HEAD is answered from the GET entry), not ${method}`)
    const params = expressPatternParams(pattern)
    const matcher: MatchFunction<Record<string, string | string[]>> = match(pattern, { decode: decodeURIComponent })
    return {
      pattern,
      params,
      config: routes[key],
      match(path: string) {
        let found
        try {
          found = matcher(path)
        } catch {
          return undefined // bad percent-encoding: not this route
        }
        if (found === false) return undefined
        const values: Record<string, string> = {}
        for (const [name, value] of Object.entries(found.params)) values[name] = Array.isArray(value) ? value.join('/') : (value as string)
        return values
      }
    }
  })
}
