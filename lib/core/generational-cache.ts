import { Generations, type GenerationsOptions } from './generations.js'

export type GenerationalCacheOptions = GenerationsOptions

/**
 * The generational cache: the engine of lib/core/generations.ts, which the
 * HTTP adapters use, plus the function-cache API of hscacheutils (DESIGN §6).
 */
export class GenerationalCache extends Generations {}
