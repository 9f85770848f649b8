import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort } from './redis.js'

/**
 * A private varnishd for the tests: on a free loopback port, with a temp
 * working dir (`-n`), in the foreground (`-F`), without a jail (`-j none`,
 * so it runs as root in a sandbox), in front of a backend on loopback, with
 * the repo's VCL (example-app/varnish/default.vcl) pointed at that backend.
 * Stopped by PID in teardown, and on process exit.
 */

export const VARNISHD = '/usr/sbin/varnishd'
export const REPO_VCL = fileURLToPath(new URL('../../example-app/varnish/default.vcl', import.meta.url))

/** varnishd processes started and not stopped yet, with their working dirs: killed and removed if the test process exits first. */
const running = new Map<ChildProcess, string>()
process.once('exit', () => {
  for (const [proc, dir] of running) {
    proc.kill('SIGKILL') // its cache child exits with it (tested by hand: none left after the manager is killed)
    rmSync(dir, { recursive: true, force: true })
  }
})

export class Varnish {
  readonly #proc: ChildProcess
  readonly #dir: string
  #log = ''

  private constructor(
    proc: ChildProcess,
    dir: string,
    readonly port: number
  ) {
    this.#proc = proc
    this.#dir = dir
    proc.stderr?.on('data', (chunk: Buffer) => {
      if (this.#log.length < 64 * 1024) this.#log += chunk.toString()
    })
    proc.stdout?.on('data', (chunk: Buffer) => {
      if (this.#log.length < 64 * 1024) this.#log += chunk.toString()
    })
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  get pid(): number | undefined {
    return this.#proc.pid
  }

  /** What varnishd wrote (for failure messages). */
  get log(): string {
    return this.#log
  }

  static async start(backendPort: number, vclPath = REPO_VCL): Promise<Varnish> {
    if (!existsSync(VARNISHD)) {
      throw new Error(`${VARNISHD} was not found. The Varnish suite starts its own varnishd: install Debian's varnish and varnish-modules (for vmod xkey).`)
    }
    const dir = mkdtempSync(join(tmpdir(), 'gc-varnish-'))
    const vcl = readFileSync(vclPath, 'utf8').replace(/(backend default \{[^}]*\.port = )"\d+"/, `$1"${backendPort}"`)
    if (!vcl.includes(`"${backendPort}"`)) throw new Error(`could not point ${vclPath} at port ${backendPort}: no backend default block with a .port`)
    const vclFile = join(dir, 'default.vcl')
    writeFileSync(vclFile, vcl)
    const check = spawnSync(VARNISHD, ['-C', '-j', 'none', '-f', vclFile, '-n', join(dir, 'check')], { encoding: 'utf8' })
    if (check.status !== 0) throw new Error(`the VCL does not compile (is varnish-modules installed, for vmod xkey?):\n${check.stderr}`)
    const port = await freePort()
    const args = ['-F', '-j', 'none', '-n', join(dir, 'work'), '-a', `127.0.0.1:${port}`, '-T', 'none', '-f', vclFile, '-s', 'malloc,32m', '-p', 'default_grace=0', '-p', 'default_keep=0']
    const proc = spawn(VARNISHD, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    running.set(proc, dir)
    proc.once('exit', () => running.delete(proc))
    const varnish = new Varnish(proc, dir, port)
    await varnish.#ready()
    return varnish
  }

  async #ready(): Promise<void> {
    const end = Date.now() + 20_000
    for (;;) {
      if (this.#proc.exitCode !== null) throw new Error(`varnishd exited with ${this.#proc.exitCode}:\n${this.#log}`)
      try {
        // Any answer (even a 503 from a backend not up yet) means the child is serving.
        const res = await fetch(`${this.url}/__varnish_ready`, { method: 'PURGE', headers: { 'xkey-purge': 'none' } })
        await res.arrayBuffer()
        return
      } catch {
        if (Date.now() > end) throw new Error(`timed out waiting for varnishd on ${this.port}:\n${this.#log}`)
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
  }

  /** SIGTERM by PID, then SIGKILL if it lingers; removes the working dir. */
  async stop(): Promise<void> {
    const proc = this.#proc
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((resolve) => proc.once('exit', resolve))
      proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    }
    rmSync(this.#dir, { recursive: true, force: true })
  }
}
