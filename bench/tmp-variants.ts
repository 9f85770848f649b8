import Fastify from 'fastify'
import groupcache, { MemoryStore } from '../lib/index.js'
import { BODY } from './body.js'
const [variant = '', port = '0'] = process.argv.slice(2)
const app = Fastify()
const slow = () => new Promise((resolve) => setTimeout(resolve, 2))
await app.register(groupcache, variant === 'small' ? { store: new MemoryStore({ maxBytes: 1 << 20 }) } : {})
app.get('/items', { config: { cache: variant === 'nostore' ? { group: 'items', statuses: [299] } : { group: 'items' } } }, async (_req, reply) => (await slow(), reply.type('application/json').send(BODY)))
await app.listen({ host: '127.0.0.1', port: Number(port) })
console.log('ready')
