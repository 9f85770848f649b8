import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'

/**
 * Local stand-ins for the Fastly and Cloudflare purge APIs, on loopback. They
 * check each request against the vendor's documented shape and answer like
 * the vendor; a request that breaks a documented rule is answered 400 and
 * recorded in `violations`, so a test asserts there are none.
 *
 * - Fastly: `POST /service/{service_id}/purge`, auth `Fastly-Key`, keys in a
 *   `Surrogate-Key` header (space-separated) or a JSON body
 *   `{"surrogate_keys": [...]}`, at most 256 keys, each at most 1024 bytes;
 *   `Fastly-Soft-Purge: 1` for a soft purge. Answers `{ "<key>": "<purge id>" }`.
 * - Cloudflare: `POST /client/v4/zones/{zone_id}/purge_cache`, auth
 *   `Authorization: Bearer <token>`, JSON body `{"tags": [...]}`, at most
 *   `maxTags` tags (plan-dependent; 30 by default), each at most 1024
 *   characters of printable ASCII without spaces or commas. Answers
 *   `{ success, errors, messages, result }`.
 */

export interface PurgeCall {
  readonly keys: string[]
  readonly soft: boolean
}

export interface Failure {
  status: number
  body?: string
  headers?: Record<string, string>
  /** Do not answer at all (for client timeouts). */
  hang?: boolean
}

export class VendorApi {
  readonly calls: PurgeCall[] = []
  readonly violations: string[] = []
  /** Answers to give, in order, before answering normally. */
  readonly failures: Failure[] = []
  readonly #server: Server
  readonly #hanging = new Set<ServerResponse>()

  private constructor(server: Server) {
    this.#server = server
  }

  get url(): string {
    const { port } = this.#server.address() as { port: number }
    return `http://127.0.0.1:${port}`
  }

  static async start(handle: (api: VendorApi, req: IncomingMessage, body: string) => { status: number; body: unknown }): Promise<VendorApi> {
    let api: VendorApi | undefined
    const server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        const self = api as VendorApi
        const failure = self.failures.shift()
        if (failure?.hang === true) {
          self.#hanging.add(res)
          return
        }
        if (failure !== undefined) {
          res.writeHead(failure.status, { 'content-type': 'application/json', ...failure.headers })
          res.end(failure.body ?? '{}')
          return
        }
        const answer = handle(self, req, Buffer.concat(chunks).toString('utf8'))
        res.writeHead(answer.status, { 'content-type': 'application/json' })
        res.end(JSON.stringify(answer.body))
      })
    })
    api = new VendorApi(server)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return api
  }

  violation(what: string): { status: number; body: unknown } {
    this.violations.push(what)
    return { status: 400, body: { msg: what } }
  }

  async close(): Promise<void> {
    for (const res of this.#hanging) res.destroy()
    this.#server.closeAllConnections()
    await new Promise((resolve) => this.#server.close(resolve))
  }
}

export function startFastlyApi(serviceId: string, token: string): Promise<VendorApi> {
  return VendorApi.start((api, req, body) => {
    if (req.method !== 'POST') return api.violation(`method ${req.method}`)
    if (req.url !== `/service/${serviceId}/purge`) return api.violation(`path ${req.url}`)
    if (req.headers['fastly-key'] !== token) return { status: 401, body: { msg: 'Provided credentials are missing or invalid' } }
    let keys: unknown
    if (typeof req.headers['surrogate-key'] === 'string') keys = req.headers['surrogate-key'].split(' ').filter((k) => k !== '')
    else {
      if (!String(req.headers['content-type']).startsWith('application/json')) return api.violation('a JSON body needs Content-Type: application/json')
      try {
        keys = (JSON.parse(body) as { surrogate_keys?: unknown }).surrogate_keys
      } catch {
        return api.violation('body is not JSON')
      }
    }
    if (!Array.isArray(keys) || keys.length === 0 || keys.some((k) => typeof k !== 'string' || k === '')) return api.violation('surrogate_keys must be a non-empty list of keys')
    if (keys.length > 256) return api.violation(`${keys.length} keys in one request (at most 256)`)
    for (const key of keys as string[]) {
      if (Buffer.byteLength(key) > 1024) api.violation(`key over 1024 bytes: ${key.slice(0, 40)}…`)
      if (/\s/.test(key)) api.violation(`key with whitespace: ${key}`)
    }
    const soft = req.headers['fastly-soft-purge']
    if (soft !== undefined && soft !== '1') return api.violation(`Fastly-Soft-Purge: ${String(soft)}`)
    api.calls.push({ keys: keys as string[], soft: soft === '1' })
    return { status: 200, body: Object.fromEntries((keys as string[]).map((k, i) => [k, `purge-${api.calls.length}-${i}`])) }
  })
}

const CLOUDFLARE_TAG = /^[\x21-\x2b\x2d-\x7e]{1,1024}$/

export function startCloudflareApi(zoneId: string, token: string, maxTags = 30): Promise<VendorApi> {
  return VendorApi.start((api, req, body) => {
    if (req.method !== 'POST') return api.violation(`method ${req.method}`)
    if (req.url !== `/client/v4/zones/${zoneId}/purge_cache`) return api.violation(`path ${req.url}`)
    if (req.headers.authorization !== `Bearer ${token}`) {
      return { status: 403, body: { success: false, errors: [{ code: 10000, message: 'Authentication error' }], messages: [], result: null } }
    }
    if (!String(req.headers['content-type']).startsWith('application/json')) return api.violation('Content-Type must be application/json')
    let tags: unknown
    try {
      tags = (JSON.parse(body) as { tags?: unknown }).tags
    } catch {
      return api.violation('body is not JSON')
    }
    if (!Array.isArray(tags) || tags.length === 0) return api.violation('tags must be a non-empty list')
    if (tags.length > maxTags) return api.violation(`${tags.length} tags in one request (at most ${maxTags} on this plan)`)
    for (const tag of tags) if (typeof tag !== 'string' || !CLOUDFLARE_TAG.test(tag)) api.violation(`invalid tag ${JSON.stringify(tag)}`)
    api.calls.push({ keys: tags as string[], soft: false })
    return { status: 200, body: { success: true, errors: [], messages: [], result: { id: `purge-${api.calls.length}` } } }
  })
}
