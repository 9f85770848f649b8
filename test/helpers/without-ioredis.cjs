// Preloaded with --require: 'ioredis' cannot be resolved in this process,
// as if it were not installed (require goes through this resolver).
const Module = require('node:module')
const resolve = Module._resolveFilename
Module._resolveFilename = function resolveWithoutIoredis(request, ...rest) {
  if (request === 'ioredis' || request.startsWith('ioredis/')) {
    const err = new Error(`Cannot find module '${request}'`)
    err.code = 'MODULE_NOT_FOUND'
    throw err
  }
  return resolve.call(this, request, ...rest)
}
