import t from 'tap'
import { checkNamespace, escapeKey, MAX_KEYS_PER_RESPONSE, unescapeKey, VENDORS, vendorKey, vendorKeys, type Vendor } from '../lib/cdn/names.js'

// Each vendor's documented key rules, written out independently of lib/cdn/names.ts.
const DOCUMENTED: Record<Vendor, { key: RegExp; maxLength: number }> = {
  // RFC 9875: sf-string members (printable ASCII), 32 characters guaranteed; no quote or backslash needing escapes, no comma or space (our VCL splits on them).
  cacheGroups: { key: /^[\x21\x23-\x2b\x2d-\x5b\x5d-\x7e]+$/, maxLength: 32 },
  xkey: { key: /^[\x21\x23-\x2b\x2d-\x5b\x5d-\x7e]+$/, maxLength: 32 },
  // Fastly: space-separated keys, a key at most 1024 bytes.
  fastly: { key: /^[\x21-\x7e]+$/, maxLength: 1024 },
  // Cloudflare: comma-separated tags, printable ASCII, at most 1024 characters.
  cloudflare: { key: /^[\x21-\x2b\x2d-\x7e]+$/, maxLength: 1024 },
  // Akamai: alphanumerics and !#$%&'+./^_`|~- , at most 128 characters.
  akamai: { key: /^[A-Za-z0-9!#$%&'+./^_`|~-]+$/, maxLength: 128 }
}
const VENDOR_NAMES = Object.keys(VENDORS) as Vendor[]

const NAMES = ['user:42', 'blogId=7,userId=42', 'posts', 'tenant=ACME Corp', 'café:ünïcode ✓', 'quote"back\\slash', '100%~tilde', 'a'.repeat(2000), `${'x:'.repeat(600)}é`]

t.test('every key is valid for its vendor, for awkward names too', async (t) => {
  for (const vendor of VENDOR_NAMES) {
    for (const name of NAMES) {
      const key = vendorKey(vendor, 'gc', name)
      t.match(key, DOCUMENTED[vendor].key, `${vendor}: ${name.slice(0, 30)} → ${key.slice(0, 40)}`)
      t.ok(key.length <= DOCUMENTED[vendor].maxLength, `${vendor}: ${key.length} characters`)
    }
  }
})

t.test('a key is readable and reversible when it fits: the namespace, a slash, the escaped name', async (t) => {
  t.equal(vendorKey('fastly', 'gc', 'user:42'), 'gc/user:42')
  t.equal(vendorKey('cacheGroups', 'gc', 'user:42'), 'gc/user:42')
  t.equal(vendorKey('akamai', 'gc', 'user:42'), 'gc/user%3A42', 'Akamai forbids ":"')
  t.equal(vendorKey('cloudflare', 'gc', 'blogId=7,userId=42'), 'gc/blogId=7%2CuserId=42', 'Cloudflare separates tags by commas')
  t.equal(vendorKey('xkey', 'app1', 'tenant=ACME Corp'), 'app1/tenant=ACME%20Corp')
  for (const vendor of VENDOR_NAMES) {
    for (const name of NAMES.slice(0, 7)) {
      const key = vendorKey(vendor, 'gc', name)
      if (key.includes('~')) continue
      t.equal(unescapeKey(key.slice('gc/'.length)), name, `${vendor} round-trips ${name}`)
    }
  }
})

t.test('a key too long for the vendor keeps a readable head and a hash; distinct names stay distinct', async (t) => {
  const long1 = `user:${'9'.repeat(200)}1`
  const long2 = `user:${'9'.repeat(200)}2`
  for (const vendor of ['cacheGroups', 'akamai'] as const) {
    const k1 = vendorKey(vendor, 'gc', long1)
    const k2 = vendorKey(vendor, 'gc', long2)
    t.equal(k1.length, VENDORS[vendor].maxKeyLength, `${vendor}: cut to the limit`)
    t.match(k1, /^gc\/user(:|%3A)9+~[A-Za-z0-9_-]{16}$/, `${vendor}: readable head, ~, 16 hash characters`)
    t.not(k1, k2, `${vendor}: names sharing the head differ by the hash`)
    t.equal(vendorKey(vendor, 'gc', long1), k1, 'stable')
  }
  // A cut never splits a %XX escape.
  const escaped = vendorKey('cacheGroups', 'gc', 'é'.repeat(40))
  t.match(escaped, /^gc\/(%C3%A9)+~/)
  t.not(vendorKey('fastly', 'gc', 'a'.repeat(2000)), vendorKey('fastly', 'other', 'a'.repeat(2000)), 'the namespace is hashed in')
})

t.test('an escaped key never looks like a hashed key: "~" and "%" are always escaped', async (t) => {
  t.equal(escapeKey('a~b%c', /[\x21-\x7e]/), 'a%7Eb%25c')
  t.equal(vendorKey('fastly', 'gc', '100%~tilde'), 'gc/100%25%7Etilde')
})

t.test('the epoch (*) is the deployment key; every response carries the deployment key once, last', async (t) => {
  t.equal(vendorKey('fastly', 'gc', '*'), 'gc')
  t.same(vendorKeys('fastly', 'gc', ['user:42', 'posts', 'user:42', '*']), ['gc/user:42', 'gc/posts', 'gc'])
  t.same(vendorKeys('xkey', 'gc', []), ['gc'])
})

t.test('the namespace must be a key in every alphabet as it is', async (t) => {
  t.equal(checkNamespace('shop-eu.1'), 'shop-eu.1')
  for (const bad of ['', 'has space', 'a/b', 'x'.repeat(33), 7, undefined]) {
    t.throws(() => checkNamespace(bad), { name: 'GroupcacheError', code: 'GC_INVALID_OPTION', message: /option cdn\.namespace must be/ })
  }
})

t.test('the largest response fits every vendor header: 32 keys of the longest length', async (t) => {
  for (const vendor of VENDOR_NAMES) {
    const rules = VENDORS[vendor]
    const names = Array.from({ length: MAX_KEYS_PER_RESPONSE - 1 }, (_, i) => `${'z'.repeat(3000)}${i}`)
    const value = rules.render(vendorKeys(vendor, 'gc', names))
    t.ok(value.length <= rules.maxHeaderLength, `${vendor}: ${value.length} ≤ ${rules.maxHeaderLength}`)
  }
})
