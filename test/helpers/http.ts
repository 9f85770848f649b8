import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'

export interface HttpResult {
  status: number
  headers: IncomingHttpHeaders
  body: string
  raw: Buffer
}

/** One real HTTP request on loopback, with full control over the headers sent. */
export function request(base: string, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<HttpResult> {
  const url = new URL(path, base)
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: url.hostname, port: url.port, method, path: url.pathname + url.search, headers: { connection: 'close', ...headers }, agent: false },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          const raw = Buffer.concat(chunks)
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: raw.toString('utf8'), raw })
        })
        res.on('error', reject)
      }
    )
    req.on('error', reject)
    req.end(body)
  })
}
