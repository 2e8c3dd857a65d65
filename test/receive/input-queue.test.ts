import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InputQueue } from '../../src/receive/input-queue.ts';

/** A session's unread input: chunks kept as they arrived, read from the front without copies. */
describe('InputQueue', () => {
  const b = (s: string) => Buffer.from(s, 'latin1');

  it('hands out the front chunk as the very bytes that arrived, not a copy', () => {
    const q = new InputQueue();
    const chunk = b('hello world');
    q.push(chunk);
    q.push(b('next'));
    assert.equal(q.length, 15);
    const front = q.front();
    assert.equal(front.buffer, chunk.buffer, 'the front shares memory with the pushed chunk');
    assert.equal(front.byteOffset, chunk.byteOffset);
    q.consumeFront(6);
    assert.equal(q.front().toString(), 'world');
    assert.equal(q.front().buffer, chunk.buffer, 'a partly read chunk is a view of the same memory');
    assert.equal(q.length, 9);
  });

  it('moves to the next chunk when the front one is read to its end', () => {
    const q = new InputQueue();
    q.push(b('ab'));
    q.push(b('cd'));
    q.consumeFront(2);
    assert.equal(q.front().toString(), 'cd');
    assert.equal(q.hasMoreThanFront(), false);
    q.consumeFront(99);
    assert.equal(q.length, 0, 'consuming more than the front takes only the front');
    assert.equal(q.front().length, 0);
  });

  it('joins the front with the next chunk for a line that spans them', () => {
    const q = new InputQueue();
    q.push(b('MAIL FR'));
    q.push(b('OM:<a@b>\r\nRCPT'));
    q.push(b(' TO:<c@d>\r\n'));
    assert.equal(q.hasMoreThanFront(), true);
    q.joinFront();
    assert.equal(q.front().toString(), 'MAIL FROM:<a@b>\r\nRCPT');
    assert.equal(q.length, 32, 'joining changes no byte count');
    q.consumeFront(17);
    q.joinFront();
    assert.equal(q.front().toString(), 'RCPT TO:<c@d>\r\n');
    q.joinFront();
    assert.equal(q.front().toString(), 'RCPT TO:<c@d>\r\n', 'with nothing after it the front stays as it is');
  });

  it('counts a cost per chunk in its footprint, so a drip of one-byte chunks reaches the pause threshold', () => {
    const q = new InputQueue();
    q.push(Buffer.alloc(64 * 1024));
    const oneBig = q.footprint;
    assert.ok(oneBig >= 64 * 1024 && oneBig < 66 * 1024, `one 64 KB chunk costs ${oneBig}`);
    q.clear();
    for (let i = 0; i < 1000; i++) q.push(b('x'));
    assert.equal(q.length, 1000);
    assert.ok(q.footprint >= 256 * 1000, `1,000 one-byte chunks cost only ${q.footprint}`);
    const before = q.footprint;
    q.consumeFront(1);
    assert.ok(before - q.footprint > 1, 'a chunk read to its end still counts its overhead');
  });

  it('ignores empty chunks and forgets everything on clear', () => {
    const q = new InputQueue();
    q.push(Buffer.alloc(0));
    assert.equal(q.hasMoreThanFront(), false);
    assert.equal(q.length, 0);
    q.push(b('x'));
    q.push(b('y'));
    q.clear();
    assert.equal(q.length, 0);
    assert.equal(q.front().length, 0);
  });

  it('keeps every byte in order through thousands of chunks read one by one', () => {
    const q = new InputQueue();
    let expected = '';
    let got = '';
    for (let i = 0; i < 5000; i++) {
      const piece = `${i},`;
      expected += piece;
      q.push(b(piece));
      if (i % 3 === 0) {
        // Read a little less than is there, so fronts are often partly read.
        while (q.length > 2) {
          const take = Math.min(q.front().length, q.length - 2);
          got += q.front().subarray(0, take).toString();
          q.consumeFront(take);
        }
      }
    }
    while (q.length > 0) {
      got += q.front().toString();
      q.consumeFront(q.front().length);
    }
    assert.equal(got, expected);
  });
});
