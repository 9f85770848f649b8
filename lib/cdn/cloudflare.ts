import { GroupcacheError } from '../errors.js'
import { PurgeError } from './purge-queue.js'
import { createPurger, httpSettings, purgeRequest, redact, type CdnPurger, type PurgerOptions } from './purger.js'

export interface CloudflarePurgerOptions extends PurgerOptions {
  /** The zone ID. */
  zoneId: string
  /** An API token with the Cache Purge permission (sent as a Bearer token; never logged). */
  token: string
  /**
   * Tags per purge request. Cloudflare's limit depends on the plan (30 per
   * call has long been the documented figure; Enterprise allows more):
   * raise it to your plan's.
   * @default 30
   */
  batchSize?: number
  /**
   * The API's base URL.
   * @default 'https://api.cloudflare.com'
   */
  endpoint?: string
}

/** Purges Cloudflare by cache tag: `POST /client/v4/zones/{zone}/purge_cache` with `{"tags":[...]}`. */
export function cloudflarePurger(options: CloudflarePurgerOptions): CdnPurger {
  const { zoneId, token, batchSize = 30, endpoint = 'https://api.cloudflare.com' } = options
  for (const [name, value] of [['zoneId', zoneId], ['token', token], ['endpoint', endpoint]] as const) {
    if (typeof value !== 'string' || value === '') throw new GroupcacheError('GC_INVALID_OPTION', `cloudflare purger: option ${name} must be a non-empty string`)
  }
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new GroupcacheError('GC_INVALID_OPTION', `cloudflare purger: option batchSize must be a positive integer, got ${String(batchSize)}`)
  }
  const settings = httpSettings(options, 'cloudflare')
  const url = `${endpoint.replace(/\/+$/, '')}/client/v4/zones/${encodeURIComponent(zoneId)}/purge_cache`
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json' }
  const send = async (keys: string[]): Promise<void> => {
    const body = await purgeRequest('cloudflare', url, { method: 'POST', headers, body: JSON.stringify({ tags: keys }) }, settings, [token])
    // Cloudflare answers 200 with `success: false` for some refusals.
    let parsed: { success?: unknown; errors?: unknown } | undefined
    try {
      parsed = JSON.parse(body) as typeof parsed
    } catch {
      parsed = undefined
    }
    if (parsed?.success !== true) {
      throw new PurgeError(redact(`cloudflare purge: not accepted: ${body.slice(0, 300)}`, [token]), { retryable: false })
    }
  }
  return createPurger('cloudflare', 'cloudflare', send, batchSize, options)
}
