import t from 'tap'
import { cdnConfig, cdnResponseHeaders, checkRouteGroupCount, invalidationHeader, MAX_GROUPS_PER_ROUTE, withSMaxage } from '../lib/cdn/headers.js'
import { VENDORS } from '../lib/cdn/names.js'

/** A strict parser of a structured-fields List whose members are all Strings (RFC 9651 §4.2.1, §4.2.5), no parameters. */
function parseStringList(value: string): string[] {
  const out: string[] = []
  let i = 0
  const ows = (): void => {
    while (value[i] === ' ' || value[i] === '\t') i++
  }
  while (i < value.length) {
    if (value[i] !== '"') throw new Error(`member at ${i} is not a String`)
    i++
    let s = ''
    for (;;) {
      const c = value[i++]
      if (c === undefined) throw new Error('unterminated String')
      if (c === '\\') {
        const n = value[i++]
        if (n !== '"' && n !== '\\') throw new Error('bad escape')
        s += n
      } else if (c === '"') break
      else {
        const code = c.charCodeAt(0)
        if (code < 0x20 || code > 0x7e) throw new Error(`character ${code} not allowed in a String`)
        s += c
      }
    }
    out.push(s)
    ows()
    if (i >= value.length) break
    if (value[i] !== ',') throw new Error(`expected a comma at ${i}`)
    i++
    ows()
    if (i >= value.length) throw new Error('trailing comma')
  }
  return out
}

const ALL = cdnConfig({ headers: ['cacheGroups', 'fastly', 'cloudflare', 'akamai', 'xkey'], namespace: 'shop' })
const header = (pairs: [string, string][], name: string): string | undefined => pairs.find(([n]) => n === name)?.[1]

t.test('each vendor header names the groups in its syntax, with the deployment key', async (t) => {
  const pairs = cdnResponseHeaders(ALL, ['user:42', 'blogId=7,userId=42'], 60)
  t.same(parseStringList(header(pairs, 'cache-groups') as string), ['shop/user:42', 'shop/blogId=7%2CuserId=42', 'shop'])
  t.equal(header(pairs, 'surrogate-key'), 'shop/user:42 shop/blogId=7,userId=42 shop')
  t.equal(header(pairs, 'cache-tag'), 'shop/user:42,shop/blogId=7%2CuserId=42,shop')
  t.equal(header(pairs, 'edge-cache-tag'), 'shop/user%3A42,shop/blogId%3D7%2CuserId%3D42,shop', 'Akamai allows neither ":" nor "="')
  t.equal(header(pairs, 'xkey'), 'shop/user:42 shop/blogId=7%2CuserId=42 shop')
  t.equal(header(pairs, 'cdn-cache-control'), undefined, 'no edge ttl unless asked')
  t.same(cdnResponseHeaders(cdnConfig(true), ['posts'], 60), [['cache-groups', '"gc/posts", "gc"']], 'default: RFC 9875 Cache-Groups only, namespace gc')
})

t.test('the largest allowed response stays within every vendor limit, with hostile names', async (t) => {
  // A route's groups and its route generation.
  const names = [...Array.from({ length: MAX_GROUPS_PER_ROUTE }, (_, i) => `tenant=${'Ωmega, "quoted" \\ '.repeat(80)}${i}`), `route=/${'Ωmega, "quoted" \\ '.repeat(80)}`]
  const pairs = cdnResponseHeaders(ALL, names, 60)
  const cacheGroups = parseStringList(header(pairs, 'cache-groups') as string)
  t.equal(cacheGroups.length, 32, 'RFC 9875: 32 members')
  t.ok(cacheGroups.every((g) => g.length <= 32), 'RFC 9875: members of at most 32 characters')
  t.equal(new Set(cacheGroups).size, 32, 'all distinct')
  for (const vendor of ['fastly', 'cloudflare', 'akamai', 'xkey'] as const) {
    const value = header(pairs, VENDORS[vendor].header) as string
    t.ok(value.length <= VENDORS[vendor].maxHeaderLength, `${vendor}: ${value.length} characters`)
  }
  t.equal((header(pairs, 'edge-cache-tag') as string).split(',').length, 32, 'Akamai: within 128 tags')
})

t.test('more groups than a header can carry: the response is kept out of the edge, not tagged partially', async (t) => {
  t.equal(MAX_GROUPS_PER_ROUTE, 30, '32 keys: the groups, the route generation and the deployment key')
  const names = Array.from({ length: MAX_GROUPS_PER_ROUTE + 1 }, (_, i) => `g:${i}`)
  t.equal(header(cdnResponseHeaders(ALL, names, 60), 'cache-groups')?.split(', ').length, 32, '31 names (30 groups and the route generation) and the deployment key fit')
  t.same(cdnResponseHeaders(ALL, [...names, 'route=/wide'], 60), [['cdn-cache-control', 'no-store'], ['surrogate-control', 'no-store']])
  t.throws(() => checkRouteGroupCount(MAX_GROUPS_PER_ROUTE + 1, 'GET /wide'), { code: 'GC_INVALID_OPTION', message: /route GET \/wide: 31 groups, but a CDN header carries at most 30 .*route generation/ })
  t.doesNotThrow(() => checkRouteGroupCount(MAX_GROUPS_PER_ROUTE, 'GET /wide'))
})

t.test('edge ttl from the route ttl: CDN-Cache-Control or s-maxage', async (t) => {
  t.equal(header(cdnResponseHeaders(cdnConfig({ edgeTtl: 'cdn-cache-control' }), ['posts'], 30.7), 'cdn-cache-control'), 'max-age=30')
  const s = cdnConfig({ edgeTtl: 's-maxage' })
  t.equal(header(cdnResponseHeaders(s, ['posts'], 30), 'cache-control'), 's-maxage=30')
  t.equal(header(cdnResponseHeaders(s, ['posts'], 30, 'public, max-age=5, s-maxage=999'), 'cache-control'), 'public, max-age=5, s-maxage=30')
  t.equal(header(cdnResponseHeaders(s, ['posts'], 30, 'private, max-age=5'), 'cache-control'), undefined, 'private responses get no s-maxage')
  t.equal(withSMaxage('no-store', 30), undefined)
  t.equal(withSMaxage(undefined, 0), 's-maxage=0')
})

t.test('Cache-Group-Invalidation names the bumped groups in the Cache-Groups encoding', async (t) => {
  const pair = invalidationHeader(ALL, ['user:42', 'posts', 'user:42']) as [string, string]
  t.equal(pair[0], 'cache-group-invalidation')
  t.same(parseStringList(pair[1]), ['shop/user:42', 'shop/posts'])
  t.same(invalidationHeader(ALL, ['*']), ['cache-group-invalidation', '"shop"'], 'a clear names the deployment key')
  t.equal(invalidationHeader(ALL, []), undefined)
  t.equal(invalidationHeader(cdnConfig({ invalidationHeader: false }), ['posts']), undefined)
  const many = Array.from({ length: 40 }, (_, i) => `g:${i}`)
  t.same(invalidationHeader(ALL, many), ['cache-group-invalidation', '"shop"'], 'past 32 groups: the deployment key (more purged, never less)')
})

t.test('bad options are errors naming the option', async (t) => {
  const bad: [unknown, RegExp][] = [
    [null, /option cdn must be true or an object/],
    [{ header: ['fastly'] }, /unknown option cdn\.header /],
    [{ headers: ['fastlyy'] }, /option cdn\.headers must list vendors among cacheGroups, xkey, fastly, cloudflare, akamai/],
    [{ headers: 'fastly' }, /option cdn\.headers/],
    [{ edgeTtl: 's-max-age' }, /option cdn\.edgeTtl/],
    [{ invalidationHeader: 'yes' }, /option cdn\.invalidationHeader must be a boolean/],
    [{ namespace: 'a b' }, /option cdn\.namespace/]
  ]
  for (const [options, message] of bad) t.throws(() => cdnConfig(options as never), { code: 'GC_INVALID_OPTION', message })
  t.same(cdnConfig({ headers: ['fastly', 'fastly'] }).headers, ['fastly'], 'duplicates dropped')
})
