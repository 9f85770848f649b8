import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { Cluster, Redis } from 'ioredis'

/**
 * Private redis-server (and redis-sentinel) processes for the tests, on free
 * loopback ports, each with its own directory. Never the shared server on 6379.
 *
 * Every process started here is stopped, and its directory removed, when the
 * test process ends however it ends: on exit and on SIGINT/SIGTERM/SIGHUP by
 * handlers here, and when the test process is SIGKILLed by a small watchdog
 * shell (one per test process) that waits for it to disappear.
 */

function requireBinary(name: string): void {
  const found = spawnSync(name, ['--version'], { stdio: 'ignore' })
  if (found.error !== undefined || found.status !== 0) {
    throw new Error(`${name} was not found on PATH. The Redis suites start their own servers and need it: install Debian's redis-server, redis-tools and redis-sentinel, or run bash .ci/run, which does.`)
  }
}

/** pid → directory of every live process started here. */
const live = new Map<number, string>()
let registry: string | undefined

function cleanupNow(): void {
  for (const [pid, dir] of live) {
    try {
      process.kill(pid, 'SIGCONT')
      process.kill(pid, 'SIGKILL')
    } catch {
      // already gone
    }
    rmSync(dir, { recursive: true, force: true })
  }
  live.clear()
  if (registry !== undefined) rmSync(dirname(registry), { recursive: true, force: true })
}

function writeRegistry(): void {
  if (registry !== undefined) writeFileSync(registry, [...live].map(([pid, dir]) => `${pid} ${dir}\n`).join(''))
}

/** Installs the exit handlers and the watchdog, once per test process. */
function guard(): string {
  if (registry !== undefined) return registry
  registry = join(mkdtempSync(join(tmpdir(), 'gc-redis-reg-')), 'live')
  writeFileSync(registry, '')
  process.once('exit', cleanupNow)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      cleanupNow()
      process.kill(process.pid, signal)
    })
  }
  // Only pids still running redis (checked in /proc) are killed: a pid may have been reused.
  const watchdog = `
    while kill -0 ${process.pid} 2>/dev/null; do sleep 0.5; done
    if [ -f "$0" ]; then
      while read pid dir; do
        if grep -q redis "/proc/$pid/cmdline" 2>/dev/null; then kill -CONT "$pid"; kill -KILL "$pid"; fi
        rm -rf "$dir"
      done < "$0"
      rm -rf "$(dirname "$0")"
    fi`
  spawn('sh', ['-c', watchdog, registry], { detached: true, stdio: 'ignore' }).unref()
  return registry
}

function track(proc: ChildProcess, dir: string): void {
  const pid = proc.pid as number
  live.set(pid, dir)
  appendFileSync(guard(), `${pid} ${dir}\n`)
  proc.once('exit', () => {
    live.delete(pid)
    writeRegistry()
  })
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

export async function waitFor(check: () => Promise<boolean> | boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  for (;;) {
    if (await Promise.resolve().then(check).catch(() => false)) return
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

async function ping(port: number): Promise<boolean> {
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  client.on('error', () => {})
  try {
    await client.connect()
    return (await client.ping()) === 'PONG'
  } finally {
    client.disconnect()
  }
}

/** One redis-cli command against a port (for admin steps the test takes, never for the library). */
export function cli(port: number, ...args: string[]): string {
  return spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).stdout.trim()
}

/** Which data a server keeps on disk. */
export type Persistence = 'none' | 'rdb' | 'aof'

const PERSISTENCE: Record<Persistence, string[]> = {
  none: ['--save', '', '--appendonly', 'no'],
  // Snapshots only when asked (SAVE/BGSAVE), like a periodic save that has not run since.
  rdb: ['--save', '', '--appendonly', 'no', '--dbfilename', 'dump.rdb'],
  aof: ['--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec']
}

export class RedisServer {
  #proc: ChildProcess | undefined
  readonly dir = mkdtempSync(join(tmpdir(), 'gc-redis-'))
  constructor(
    readonly port: number,
    readonly extraArgs: string[],
    readonly persistence: Persistence = 'none'
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  get pid(): number | undefined {
    return this.#proc?.pid
  }

  /** Starts (or restarts, from what is in its directory) the server. */
  async start(): Promise<this> {
    requireBinary('redis-server')
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', ...PERSISTENCE[this.persistence], '--dir', this.dir, '--daemonize', 'no', '--loglevel', 'warning', ...this.extraArgs]
    this.#proc = spawn('redis-server', args, { stdio: 'ignore' })
    track(this.#proc, this.dir)
    await waitFor(() => ping(this.port), `redis-server on port ${this.port}`)
    return this
  }

  /** SIGSTOP: the server keeps its connections but answers nothing. */
  freeze(): void {
    this.#proc?.kill('SIGSTOP')
  }

  thaw(): void {
    this.#proc?.kill('SIGCONT')
  }

  /** SIGKILL (nothing flushed), and wait for the process to be gone. The directory is kept, so start() restarts from it. */
  async kill(): Promise<void> {
    const proc = this.#proc
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return
    const exited = new Promise((resolve) => proc.once('exit', resolve))
    proc.kill('SIGCONT')
    proc.kill('SIGKILL')
    await exited
  }

  async stop(): Promise<void> {
    await this.kill()
    rmSync(this.dir, { recursive: true, force: true })
  }

  client(options: { keyPrefix?: string } = {}): Redis {
    const client = new Redis({ port: this.port, host: '127.0.0.1', ...options })
    client.on('error', () => {})
    return client
  }

  /** The server's run_id (new on every start). */
  runId(): string {
    return /run_id:(\S+)/.exec(cli(this.port, 'INFO', 'server'))?.[1] as string
  }
}

export async function startRedis(extraArgs: string[] = [], persistence: Persistence = 'none'): Promise<RedisServer> {
  return new RedisServer(await freePort(), extraArgs, persistence).start()
}

/** A replica of `primary`, with its link up and the data synced. */
export async function startReplica(primary: RedisServer, extraArgs: string[] = []): Promise<RedisServer> {
  const replica = await startRedis(['--replicaof', '127.0.0.1', String(primary.port), ...extraArgs])
  await waitFor(() => cli(replica.port, 'INFO', 'replication').includes('master_link_status:up'), `replica ${replica.port} in sync`)
  return replica
}

/** A redis-sentinel process monitoring `primary` under `name` (quorum 1, fast failure detection). */
export class RedisSentinel {
  #proc: ChildProcess | undefined
  readonly dir = mkdtempSync(join(tmpdir(), 'gc-sentinel-'))
  constructor(readonly port: number) {}

  static async start(primary: RedisServer, name: string): Promise<RedisSentinel> {
    requireBinary('redis-sentinel')
    const sentinel = new RedisSentinel(await freePort())
    const conf = join(sentinel.dir, 'sentinel.conf')
    writeFileSync(
      conf,
      [
        `port ${sentinel.port}`,
        'bind 127.0.0.1',
        `dir ${sentinel.dir}`,
        `sentinel monitor ${name} 127.0.0.1 ${primary.port} 1`,
        `sentinel down-after-milliseconds ${name} 1000`,
        `sentinel failover-timeout ${name} 10000`,
        `sentinel parallel-syncs ${name} 1`,
        ''
      ].join('\n')
    )
    sentinel.#proc = spawn('redis-sentinel', [conf], { stdio: 'ignore' })
    track(sentinel.#proc, sentinel.dir)
    await waitFor(() => ping(sentinel.port), `redis-sentinel on port ${sentinel.port}`)
    return sentinel
  }

  async stop(): Promise<void> {
    const proc = this.#proc
    if (proc !== undefined && proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((resolve) => proc.once('exit', resolve))
      proc.kill('SIGKILL')
      await exited
    }
    rmSync(this.dir, { recursive: true, force: true })
  }
}

/** Masters (and their replicas, if asked), joined with redis-cli --cluster create. */
export class RedisCluster {
  constructor(
    readonly nodes: RedisServer[],
    readonly replicas: number
  ) {}

  /** Three masters; `replicas` replicas each (the replicas are nodes 3…). */
  static async start(replicas = 0): Promise<RedisCluster> {
    requireBinary('redis-cli')
    const nodes: RedisServer[] = []
    for (let i = 0; i < 3 * (1 + replicas); i++) {
      const port = await freePort()
      nodes.push(await new RedisServer(port, ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000']).start())
    }
    const created = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', String(replicas), '--cluster-yes'], { encoding: 'utf8' })
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`)
    for (const node of nodes) {
      await waitFor(() => cli(node.port, 'cluster', 'info').includes('cluster_state:ok'), `cluster state ok on ${node.port}`, 20_000)
    }
    if (replicas > 0) {
      for (const node of nodes) {
        await waitFor(() => {
          const info = cli(node.port, 'INFO', 'replication')
          return info.includes('role:master') || info.includes('master_link_status:up')
        }, `replica ${node.port} in sync`, 20_000)
      }
    }
    return new RedisCluster(nodes, replicas)
  }

  client(options: { keyPrefix?: string } = {}): Cluster {
    const client = new Cluster(
      this.nodes.slice(0, 3).map((n) => ({ host: '127.0.0.1', port: n.port })),
      { redisOptions: options }
    )
    client.on('error', () => {})
    return client
  }

  /** The node serving a key's slot now (CLUSTER KEYSLOT, then CLUSTER SLOTS as seen by any master). */
  owner(key: string): RedisServer {
    const any = this.nodes[0] as RedisServer
    const slot = Number(cli(any.port, 'CLUSTER', 'KEYSLOT', key))
    const nodes = cli(any.port, 'CLUSTER', 'NODES').split('\n')
    for (const line of nodes) {
      const fields = line.split(' ')
      if (!(fields[2] ?? '').includes('master') || (fields[2] ?? '').includes('fail')) continue
      for (const range of fields.slice(8)) {
        const [from, to = from] = range.split('-').map(Number)
        if (slot >= (from as number) && slot <= (to as number)) {
          const port = Number(/:(\d+)@/.exec(fields[1] as string)?.[1])
          return this.nodes.find((n) => n.port === port) as RedisServer
        }
      }
    }
    throw new Error(`no master serves slot ${slot}`)
  }

  /** A replica of `master`. */
  replicaOf(master: RedisServer): RedisServer {
    const id = cli(master.port, 'CLUSTER', 'MYID')
    const line = cli(master.port, 'CLUSTER', 'NODES')
      .split('\n')
      .find((l) => l.includes(`slave ${id}`) || l.split(' ')[3] === id)
    const port = Number(/:(\d+)@/.exec((line as string).split(' ')[1] as string)?.[1])
    return this.nodes.find((n) => n.port === port) as RedisServer
  }

  async stop(): Promise<void> {
    for (const node of this.nodes) await node.stop()
  }
}
