import { GroupcacheError } from '../errors.js'
import { createPurger, httpSettings, purgeRequest, type CdnPurger, type PurgerOptions } from './purger.js'

/** Fastly's API allows at most 256 surrogate keys per batch purge. */
export const FASTLY_MAX_KEYS = 256

export interface FastlyPurgerOptions extends PurgerOptions {
  /** The Fastly service ID. */
  serviceId: string
  /** An API token with purge rights (sent as `Fastly-Key`; never logged). */
  token: string
  /**
   * Soft purge (`Fastly-Soft-Purge: 1`): marks content stale instead of
   * removing it, so Fastly may still serve it stale where the response allows
   * (`stale-while-revalidate`, `stale-if-error`).
   * @default true
   */
  soft?: boolean
  /**
   * Keys per purge request (at most 256).
   * @default 256
   */
  batchSize?: number
  /**
   * The API's base URL.
   * @default 'https://api.fastly.com'
   */
  endpoint?: string
}

/** Purges Fastly by surrogate key: `POST /service/{id}/purge` with a JSON list of keys. */
export function fastlyPurger(options: FastlyPurgerOptions): CdnPurger {
  const { serviceId, token, soft = true, batchSize = FASTLY_MAX_KEYS, endpoint = 'https://api.fastly.com' } = options
  for (const [name, value] of [['serviceId', serviceId], ['token', token], ['endpoint', endpoint]] as const) {
    if (typeof value !== 'string' || value === '') throw new GroupcacheError('GC_INVALID_OPTION', `fastly purger: option ${name} must be a non-empty string`)
  }
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > FASTLY_MAX_KEYS) {
    throw new GroupcacheError('GC_INVALID_OPTION', `fastly purger: option batchSize must be an integer from 1 to ${FASTLY_MAX_KEYS}, got ${String(batchSize)}`)
  }
  const settings = httpSettings(options, 'fastly')
  const url = `${endpoint.replace(/\/+$/, '')}/service/${encodeURIComponent(serviceId)}/purge`
  const headers: Record<string, string> = { 'fastly-key': token, 'content-type': 'application/json', accept: 'application/json' }
  if (soft) headers['fastly-soft-purge'] = '1'
  const send = async (keys: string[]): Promise<void> => {
    await purgeRequest('fastly', url, { method: 'POST', headers, body: JSON.stringify({ surrogate_keys: keys }) }, settings, [token])
  }
  return createPurger('fastly', 'fastly', send, batchSize, options)
}
