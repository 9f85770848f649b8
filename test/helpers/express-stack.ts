import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Express } from 'express'
import type { Test } from 'tap'
import type { ExpressCache } from '../../lib/express.js'
import { request, type HttpResult } from './http.js'

export type Client = (method: string, path: string, headers?: Record<string, string>) => Promise<HttpResult>

/** Listens on a free loopback port; closes the server and the cache at teardown. */
export async function listenExpress(t: Test, app: Express, gc: ExpressCache): Promise<Client> {
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s))
  })
  t.teardown(async () => {
    await new Promise((resolve) => server.close(resolve))
    await gc.close()
  })
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return (method, path, headers) => request(base, method, path, headers)
}

/** The `name=value` part of a response's Set-Cookie, to send back as Cookie. */
export function cookieOf(result: HttpResult): string | undefined {
  return result.headers['set-cookie']?.[0]?.split(';')[0]
}

export const STORED = 'groupcache; fwd=miss; stored'
export const HIT = /^groupcache; hit; ttl=\d+$/
