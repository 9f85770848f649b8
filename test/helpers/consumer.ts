import { execFile } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const run = promisify(execFile)
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')

/**
 * A project that uses groupcache the way a user's does: its own directory with
 * `node_modules/groupcache` holding the package as built (dist and package.json,
 * no sources), the rest of node_modules linked from this repository's. Packages
 * named in `without` are left out, so they cannot be resolved from it.
 */
export interface Consumer {
  readonly dir: string
  remove(): void
}

export async function makeConsumer(options: { without?: readonly string[] } = {}): Promise<Consumer> {
  const dir = mkdtempSync(join(tmpdir(), 'gc-consumer-'))
  const modules = join(dir, 'node_modules')
  const pkg = join(modules, 'groupcache')
  mkdirSync(pkg, { recursive: true })
  const left = new Set(['groupcache', '.bin', '.package-lock.json', ...(options.without ?? [])])
  for (const name of readdirSync(join(ROOT, 'node_modules'))) {
    if (!left.has(name)) symlinkSync(join(ROOT, 'node_modules', name), join(modules, name))
  }
  // A build of its own, so the repository's dist/ is neither needed nor touched.
  try {
    await run(process.execPath, [TSC, '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(pkg, 'dist')], { cwd: ROOT })
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
  copyFileSync(join(ROOT, 'package.json'), join(pkg, 'package.json'))
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }))
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) }
}

/** Runs this repository's tsc; resolves with its output (it exits non-zero on type errors). */
export async function tsc(args: readonly string[], cwd: string): Promise<{ ok: boolean; output: string }> {
  try {
    const { stdout } = await run(process.execPath, [TSC, ...args], { cwd, maxBuffer: 16 * 2 ** 20 })
    return { ok: true, output: stdout }
  } catch (err) {
    const failed = err as { stdout?: string; stderr?: string; message: string }
    return { ok: false, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` || failed.message }
  }
}
