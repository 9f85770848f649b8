import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Cluster, Redis } from 'ioredis'

/**
 * Private redis-server processes for the tests, on free loopback ports, with
 * nothing kept on disk. Never the shared server on 6379.
 */

function requireBinary(name: string): void {
  const found = spawnSync(name, ['--version'], { stdio: 'ignore' })
  if (found.error !== undefined || found.status !== 0) {
    throw new Error(`${name} was not found on PATH. The Redis suites start their own servers and need it: install Debian's redis-server (apt-get install redis-server redis-tools), or run bash .ci/run, which does.`)
  }
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

async function waitFor(check: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  for (;;) {
    if (await check().catch(() => false)) return
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

export class RedisServer {
  #proc: ChildProcess | undefined
  readonly dir = mkdtempSync(join(tmpdir(), 'gc-redis-'))
  constructor(
    readonly port: number,
    readonly extraArgs: string[]
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  async start(): Promise<this> {
    requireBinary('redis-server')
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, '--daemonize', 'no', '--loglevel', 'warning', ...this.extraArgs]
    this.#proc = spawn('redis-server', args, { stdio: 'ignore' })
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

  /** SIGKILL, and wait for the process to be gone. */
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

  client(): Redis {
    const client = new Redis({ port: this.port, host: '127.0.0.1' })
    client.on('error', () => {})
    return client
  }
}

export async function startRedis(extraArgs: string[] = []): Promise<RedisServer> {
  return new RedisServer(await freePort(), extraArgs).start()
}

/** Three masters, no replicas, joined with redis-cli --cluster create. */
export class RedisCluster {
  constructor(readonly nodes: RedisServer[]) {}

  static async start(): Promise<RedisCluster> {
    requireBinary('redis-cli')
    const nodes: RedisServer[] = []
    for (let i = 0; i < 3; i++) {
      const port = await freePort()
      nodes.push(await new RedisServer(port, ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000']).start())
    }
    const created = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8' })
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`)
    for (const node of nodes) {
      await waitFor(async () => {
        const info = spawnSync('redis-cli', ['-p', String(node.port), 'cluster', 'info'], { encoding: 'utf8' }).stdout
        return info.includes('cluster_state:ok')
      }, `cluster state ok on ${node.port}`)
    }
    return new RedisCluster(nodes)
  }

  client(): Cluster {
    const client = new Cluster(this.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })))
    client.on('error', () => {})
    return client
  }

  async stop(): Promise<void> {
    for (const node of this.nodes) await node.stop()
  }
}
