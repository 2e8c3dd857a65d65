import assert from 'node:assert/strict';
import { constants, type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { noteLargeBodyBytes, youngCollectionsForced } from '../../src/core/young-garbage.ts';

const MB = 1024 * 1024;
const CHUNK = 64 * 1024;

/** Streams `total` bytes of one message from `from` in 64 KB chunks, as a body writer would. */
function streamBody(from: number, total: number): void {
  for (let offset = from; offset < from + total; offset += CHUNK) noteLargeBodyBytes(offset, CHUNK);
}

/**
 * A large message's chunks die young, but V8 frees them late (src/core/young-garbage.ts): once
 * 16 MB of content past a message's first 4 MB has gone by with no collection, one minor
 * collection is asked for, after the current I/O callbacks.
 */
describe('young garbage collection for large messages', () => {
  it('asks for one collection once a large message has streamed far enough, and V8 runs it', async () => {
    let minor = 0;
    const observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        const kind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
        if (kind === constants.NODE_PERFORMANCE_GC_MINOR) minor++;
      }
    });
    observer.observe({ entryTypes: ['gc'] });
    const before = youngCollectionsForced();
    streamBody(0, 24 * MB);
    assert.equal(youngCollectionsForced(), before, 'the collection waits for the next turn of the loop');
    await nextTurn();
    assert.equal(
      youngCollectionsForced(),
      before + 1,
      '24 MB of one message (20 past its first 4) asks for one',
    );
    // GC entries reach observers asynchronously.
    await new Promise((resolve) => setTimeout(resolve, 50));
    observer.disconnect();
    assert.ok(minor >= 1, 'the collection was asked for but no minor collection ran');
  });

  it('coalesces the requests of one turn into a single collection', async () => {
    const before = youngCollectionsForced();
    streamBody(4 * MB, 200 * MB);
    await nextTurn();
    assert.equal(youngCollectionsForced(), before + 1);
  });

  it('leaves messages of up to 4 MB to V8, however many of them stream', async () => {
    await nextTurn();
    const before = youngCollectionsForced();
    for (let i = 0; i < 20; i++) streamBody(0, 4 * MB);
    await nextTurn();
    assert.equal(youngCollectionsForced(), before, '80 MB in 4 MB messages asked for a collection');
  });
});
