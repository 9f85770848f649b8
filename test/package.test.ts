import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import t from 'tap'
import { ROOT, run } from './helpers/consumer.js'

/**
 * The package as `npm publish` would upload it: `npm pack` (which builds
 * through the `prepare` script), then its file list, its package.json, and
 * publint and @arethetypeswrong/cli on the tarball itself.
 */

const bin = (name: string): string => join(ROOT, 'node_modules', '.bin', name)

interface Packed {
  filename: string
  files: { path: string }[]
}

const dest = mkdtempSync(join(tmpdir(), 'gc-pack-'))
t.teardown(() => rmSync(dest, { recursive: true, force: true }))
const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dest], { cwd: ROOT, maxBuffer: 16 * 2 ** 20 })
const packed = (JSON.parse(stdout.slice(stdout.indexOf('['))) as Packed[])[0] as Packed
const tarball = join(dest, packed.filename)
const files = packed.files.map((f) => f.path).sort()

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(join(ROOT, 'lib'), join(e.parentPath, e.name)))
}

t.test('the tarball holds dist, README, LICENSE and package.json, and nothing else', async (t) => {
  const outside = files.filter((f) => !f.startsWith('dist/') && !['README.md', 'LICENSE', 'package.json'].includes(f))
  t.same(outside, [], 'no file outside dist/ but the three')
  for (const f of ['README.md', 'LICENSE', 'package.json']) t.ok(files.includes(f), `${f} is in it`)
  t.same(
    files.filter((f) => f.startsWith('dist/') && !/\.(js|d\.ts)$/.test(f)),
    [],
    'dist holds only .js and .d.ts (no source maps pointing at sources it lacks, no build info)'
  )
})

t.test('dist is exactly the build of lib/: nothing missing, nothing stale', async (t) => {
  const expected = sources(join(ROOT, 'lib'))
    .flatMap((src) => [`dist/${src.replace(/\.ts$/, '.js')}`, `dist/${src.replace(/\.ts$/, '.d.ts')}`])
    .sort()
  t.same(
    files.filter((f) => f.startsWith('dist/')),
    expected
  )
})

t.test('what is published stands alone: no file cites the design document users do not have', async (t) => {
  // dist/ is what npm pack just built; its .d.ts files carry the TSDoc editors show users.
  const citing = files.filter((f) => /DESIGN(\.md| §)/.test(readFileSync(join(ROOT, f), 'utf8')))
  t.same(citing, [], 'TSDoc and README point at README sections instead')
})

t.test('package.json points at files in the tarball and keeps ioredis optional', async (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Record<string, any>
  const targets: string[] = [pkg.main, pkg.types]
  for (const entry of Object.values(pkg.exports as Record<string, string | Record<string, string>>)) {
    targets.push(...(typeof entry === 'string' ? [entry] : Object.values(entry)))
  }
  for (const target of targets) t.ok(files.includes(target.replace(/^\.\//, '')), `${target} is in the tarball`)
  t.equal(pkg.license, 'MIT')
  t.match(readFileSync(join(ROOT, 'LICENSE'), 'utf8'), /^MIT License\n\nCopyright \(c\) 2026 the groupcache authors\n/)
  t.ok(pkg.repository?.url && pkg.homepage && pkg.bugs?.url, 'repository, homepage and bugs are set')
  t.notOk('ioredis' in pkg.dependencies, 'ioredis is not installed for every user')
  t.equal(pkg.peerDependenciesMeta?.ioredis?.optional, true, 'ioredis is an optional peer')
  t.ok(pkg.devDependencies?.ioredis, 'and installed for our own tests')
  t.equal(pkg.sideEffects, false)
})

t.test('publint finds nothing in the tarball, not even a suggestion', async (t) => {
  const { stdout } = await run(bin('publint'), ['run', tarball, '--strict', '--level', 'suggestion'], { cwd: dest })
  t.match(stdout, /All good!/, stdout)
})

/** Resolutions the esm-only profile leaves out: a CommonJS `require` and TypeScript's pre-`exports` node10 mode. */
const NOT_ESM = ['node10', 'node16-cjs']

t.test('@arethetypeswrong/cli finds no problem in the tarball (ESM only, as the package is)', async (t) => {
  let exitCode = 0
  const result = await run(bin('attw'), [tarball, '--profile', 'esm-only', '--format', 'json'], { cwd: dest, maxBuffer: 16 * 2 ** 20 }).catch((err: { code: number; stdout: string }) => {
    exitCode = err.code
    return { stdout: err.stdout }
  })
  const report = JSON.parse(result.stdout) as { analysis: { problems: { kind: string; entrypoint: string; resolutionKind: string }[]; entrypoints: Record<string, unknown> } }
  t.same(Object.keys(report.analysis.entrypoints).sort(), ['.', './express', './package.json'], 'every entry point checked')
  t.same(
    report.analysis.problems.filter((p) => !NOT_ESM.includes(p.resolutionKind)),
    [],
    'no problem for ESM importers (node16/nodenext from ESM, bundler)'
  )
  t.equal(exitCode, 0, 'attw exits 0')
})
