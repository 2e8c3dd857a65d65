import assert from 'node:assert/strict';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { buildDsn } from '../../src/dsn/index.ts';
import { common, queuedMessage, queuedRecipient } from './dsn-fixtures.ts';

const SIZE = 20 * 1024 * 1024;
const LINE = Buffer.from(`${'0123456789abcdef'.repeat(4)}\r\n`);

/** A stored body read from disk that counts what it has handed out and whether it was released. */
function countedBody(path: string): { open: () => Readable; produced: () => number; closed: () => boolean } {
  let produced = 0;
  let file: Readable | undefined;
  return {
    open: () => {
      file = createReadStream(path);
      const counter = new PassThrough({ highWaterMark: 64 * 1024 });
      file.on('data', (chunk: Buffer) => {
        produced += chunk.length;
        if (!counter.write(chunk)) {
          file!.pause();
          counter.once('drain', () => file!.resume());
        }
      });
      file.on('end', () => counter.end());
      counter.on('close', () => file!.destroy());
      return counter;
    },
    produced: () => produced,
    closed: () => file?.destroyed ?? false,
  };
}

describe('a report about a 20 MB message', () => {
  let dir: string;
  let path: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferrymail-dsn-'));
    path = join(dir, 'original.eml');
    const out = createWriteStream(path);
    out.write('From: alice@example.test\r\nSubject: big\r\n\r\n');
    const block = Buffer.concat(Array.from({ length: 1024 }, () => LINE));
    let written = 0;
    while (written < SIZE) {
      if (!out.write(block)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
      written += block.length;
    }
    out.end();
    await finished(out);
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('RET=FULL streams it through, never reading far ahead of the reader', async () => {
    const size = (await stat(path)).size;
    const body = countedBody(path);
    const output = buildDsn({
      ...common,
      kind: 'failure',
      message: queuedMessage({ dsn: { ret: 'FULL' }, size }),
      recipients: [{ recipient: queuedRecipient('bob@remote.test'), status: '5.3.4', action: 'failed' }],
      originalBody: body.open,
      maxFullReturnSize: 32 * 1024 * 1024,
    });
    let consumed = 0;
    let maxLead = 0;
    let tail = Buffer.alloc(0);
    for await (const chunk of output.message as AsyncIterable<Buffer>) {
      consumed += chunk.length;
      maxLead = Math.max(maxLead, body.produced() - consumed);
      tail = Buffer.concat([tail, chunk]).subarray(-64);
      // A slow reader: the source must wait for it.
      if (consumed % (1024 * 1024) < chunk.length) await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(body.produced(), size, 'the whole original was read');
    assert.ok(consumed > size, 'the whole original is in the report');
    assert.ok(maxLead < 1024 * 1024, `the source ran ${maxLead} bytes ahead of the reader`);
    assert.match(tail.toString('latin1'), /0123456789abcdef\r\n\r\n--=_test-boundary-42--\r\n$/);
  });

  it('headers only read just the header section, then release the file', async () => {
    const size = (await stat(path)).size;
    const body = countedBody(path);
    const output = buildDsn({
      ...common,
      kind: 'failure',
      message: queuedMessage({ size }),
      recipients: [{ recipient: queuedRecipient('bob@remote.test'), status: '5.3.4', action: 'failed' }],
      originalBody: body.open,
    });
    const chunks: Buffer[] = [];
    for await (const chunk of output.message as AsyncIterable<Buffer>) chunks.push(chunk);
    const raw = Buffer.concat(chunks);
    assert.ok(raw.length < 10_000, `a ${raw.length} byte report`);
    assert.ok(body.produced() <= 256 * 1024, `${body.produced()} bytes of the original were read`);
    assert.match(
      raw.toString('latin1'),
      /Content-Type: text\/rfc822-headers\r\n[\s\S]*\r\nSubject: big\r\n\r\n--=_test/,
    );
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(body.closed(), true);
  });

  it('a reader that gives up part way releases the original too', async () => {
    const size = (await stat(path)).size;
    const body = countedBody(path);
    const output = buildDsn({
      ...common,
      kind: 'failure',
      message: queuedMessage({ dsn: { ret: 'FULL' }, size }),
      recipients: [{ recipient: queuedRecipient('bob@remote.test'), status: '5.3.4', action: 'failed' }],
      originalBody: body.open,
      maxFullReturnSize: 32 * 1024 * 1024,
    });
    let consumed = 0;
    for await (const chunk of output.message as AsyncIterable<Buffer>) {
      consumed += chunk.length;
      if (consumed > 2 * 1024 * 1024) break;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(output.message.destroyed, true);
    assert.equal(body.closed(), true);
    assert.ok(body.produced() < 4 * 1024 * 1024, `${body.produced()} bytes read before giving up`);
  });
});
