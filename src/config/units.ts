import { z } from 'zod';

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

/** A duration written as `30s`, `5m`, `4h`, `2d` or `250ms`; becomes milliseconds. */
export const duration = z.union([
  z.number().int().nonnegative().describe('milliseconds'),
  z
    .string()
    .regex(/^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)\s*$/i, 'expected a duration such as 30s, 5m, 4h or 2d')
    .transform((text) => {
      const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/i.exec(text)!;
      return Math.round(Number(m[1]) * DURATION_UNITS[m[2]!.toLowerCase()]!);
    }),
]);

/** A size written as `36MB`, `256KB` or a number of bytes; becomes bytes. */
export const size = z.union([
  z.number().int().nonnegative().describe('bytes'),
  z
    .string()
    .regex(/^\s*\d+(\.\d+)?\s*(b|kb|mb|gb)\s*$/i, 'expected a size such as 256KB, 36MB or 1GB')
    .transform((text) => {
      const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)\s*$/i.exec(text)!;
      return Math.round(Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]!);
    }),
]);
