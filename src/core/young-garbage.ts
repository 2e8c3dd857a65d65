import { PerformanceObserver } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Asks V8 for a minor (young-generation) collection while a large message streams, so its dead
 * chunks don't pile up outside the JS heap.
 *
 * Every socket read and every body-file read is a fresh Buffer (up to 64 KB) that dies as soon
 * as its bytes are written on. Its memory is "external": V8 frees it only when a collection
 * finds the Buffer dead. Scavenges are driven by allocation on the JS heap, which streaming
 * content hardly does (~100 bytes of heap per 64 KB chunk), and the other trigger is 64 MB of
 * external growth since the last full collection. So one 100 MB message arriving at 70–200 MB/s
 * held 64 MB of dead chunks at its peak (bench/large-message.ts), whatever the code did.
 *
 * Measured on that bench (peak RSS growth, 100 MB by DATA, and by BDAT): 64 MB as V8 does it;
 * 8 MB with `--max-semi-space-size=1`, which changes every collection in the process and works
 * only on the command line; 22 MB with this (a minor collection when 16 MB of large-message
 * content has passed with no collection at all), at about 1.5 ms per collection.
 *
 * Only content past the first 4 MB of a message counts. With many medium messages at once
 * (20 sessions of 1 MB) V8 runs full collections every ~14 MB on its own, and forcing minor
 * ones there promoted chunks still in flight: full collections took twice as long and the
 * process ~10% more CPU. So smaller messages are left to V8, and any collection, V8's own or
 * ours, starts the count again (a `gc` PerformanceObserver).
 *
 * The collector is V8's `gc` extension (`--expose-gc`, set at run time and reached through a
 * fresh context, ~0.4 MB, on first use). Where that is refused nothing is done and V8 keeps its
 * own pace. The flag is process-wide: contexts and worker threads created after the first large
 * message also get a global `gc`. Nothing here runs code from outside, so that only means a
 * function nobody calls. The collection runs after the current I/O callbacks (setImmediate),
 * coalesced.
 */

const COLLECT_EVERY_BYTES = 16 * 1024 * 1024;
const LARGE_BODY_BYTES = 4 * 1024 * 1024;

type Collect = (options: { type: 'minor' | 'major' }) => void;

let collect: Collect | null | undefined;
/** Content bytes noted since V8 last collected, on its own or because we asked. */
let bytesSinceCollection = 0;
let scheduled = false;
let forcedCount = 0;

/** Collections asked for so far (for tests and diagnostics). */
export function youngCollectionsForced(): number {
  return forcedCount;
}

function collector(): Collect | null {
  if (collect !== undefined) return collect;
  try {
    setFlagsFromString('--expose-gc');
    const found: unknown = runInNewContext('typeof gc === "function" ? gc : null');
    collect = typeof found === 'function' ? (found as Collect) : null;
  } catch {
    collect = null;
  }
  // Any collection, V8's own or ours, frees what is dead: the count starts again.
  if (collect) {
    new PerformanceObserver(() => {
      bytesSinceCollection = 0;
    }).observe({ entryTypes: ['gc'] });
  }
  return collect;
}

const collectNow = () => {
  scheduled = false;
  forcedCount++;
  collect?.({ type: 'minor' });
};

/**
 * `bytes` of one message's content, starting `offset` bytes into it, were just read into a
 * Buffer that will die young. Only what lies past the first LARGE_BODY_BYTES of a message
 * counts: see the module comment for why smaller messages are left to V8.
 */
export function noteLargeBodyBytes(offset: number, bytes: number): void {
  const past = offset + bytes - Math.max(offset, LARGE_BODY_BYTES);
  if (past <= 0) return;
  bytesSinceCollection += past;
  if (bytesSinceCollection < COLLECT_EVERY_BYTES || scheduled || !collector()) return;
  scheduled = true;
  setImmediate(collectNow);
}
