import { GroupcacheError } from '../errors.js'
import { createPurger, httpSettings, purgeRequest, type CdnPurger, type PurgerOptions } from './purger.js'

export interface VarnishPurgerOptions extends PurgerOptions {
  /**
   * Varnish's address (`http://127.0.0.1:6081`); give several for a fleet of
   * Varnish servers: each gets every purge.
   */
  url: string | readonly string[]
  /**
   * `xkey.softpurge` (content kept, stale, for grace) instead of `xkey.purge`.
   * @default false
   */
  soft?: boolean
  /**
   * Keys per PURGE request (the keys travel in one header: Varnish's default
   * `http_req_hdr_len` is 8 KB and an xkey key is at most 32 characters).
   * @default 128
   */
  batchSize?: number
}

/**
 * Purges Varnish by xkey: a `PURGE /` request with the keys space-separated in
 * `xkey-purge` (or `xkey-softpurge`), as example-app/varnish/default.vcl reads them.
 */
export function varnishPurger(options: VarnishPurgerOptions): CdnPurger {
  const { soft = false, batchSize = 128 } = options
  const urls = typeof options.url === 'string' ? [options.url] : options.url
  if (!Array.isArray(urls) || urls.length === 0 || urls.some((u) => typeof u !== 'string' || !/^https?:\/\//.test(u))) {
    throw new GroupcacheError('GC_INVALID_OPTION', `varnish purger: option url must be an http(s) URL or a list of them, got ${JSON.stringify(options.url)}`)
  }
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new GroupcacheError('GC_INVALID_OPTION', `varnish purger: option batchSize must be a positive integer, got ${String(batchSize)}`)
  }
  const settings = httpSettings(options, 'varnish')
  const header = soft ? 'xkey-softpurge' : 'xkey-purge'
  const send = async (keys: string[]): Promise<void> => {
    await Promise.all(urls.map((url) => purgeRequest('varnish', `${url.replace(/\/+$/, '')}/`, { method: 'PURGE', headers: { [header]: keys.join(' ') } }, settings, [])))
  }
  return createPurger('xkey', 'varnish', send, batchSize, options)
}
