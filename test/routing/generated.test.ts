import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import { createIdGenerator } from '../../src/core/ids.ts';
import { SqliteQueueStore } from '../../src/queue/sqlite-store.ts';
import type { BodyWriter } from '../../src/queue/types.ts';
import type { MessageSink } from '../../src/receive/types.ts';
import { type GeneratedEnvelope, SinkSubmitter } from '../../src/routing/generated.ts';
import type { Router } from '../../src/routing/router.ts';
import { SubmissionSink } from '../../src/routing/submission.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';
import { FakeDirectory } from '../helpers/receive-fakes.ts';

/** Local recipients to their mailbox, the rest to the Unreachable queue (no connectors here). */
const router: Router = {
  route: (r) =>
    r.local
      ? { type: 'mailbox', mailbox: r.address }
      : { type: 'unreachable', domain: r.address.slice(r.address.lastIndexOf('@') + 1) },
};

const REPORT = Buffer.from(
  'From: "Mail Delivery System" <postmaster@example.test>\r\nSubject: Undeliverable: hi\r\n\r\nreport\r\n',
);

const envelope = (recipient: string): GeneratedEnvelope => ({
  sender: '',
  recipient,
  bodyType: '7BIT',
  smtpUtf8: false,
  messageId: '<dsn.1@mx.example.test>',
  subject: 'Undeliverable: hi',
});

describe('queuing a message the node generated', () => {
  let dir: string;
  let store: SqliteQueueStore;
  let sink: SubmissionSink;
  let queued: number;
  let submitter: SinkSubmitter;

  beforeEach(async () => {
    dir = await makeTempDir('ferrymail-generated-');
    const clock = new ManualClock();
    store = new SqliteQueueStore({
      dir,
      clock,
      ids: createIdGenerator(clock),
      messageExpiration: 86_400_000,
      inlineBodyLimit: 64 * 1024,
    });
    await store.open();
    queued = 0;
    sink = new SubmissionSink({ store, router, onQueued: () => queued++ });
    submitter = new SinkSubmitter({ sink, directory: new FakeDirectory(), reportingMta: 'mx.example.test' });
  });
  afterEach(async () => {
    await store?.close();
    if (dir) await removeDir(dir);
  });

  it('puts a report for a local sender into the queue for their mailbox, from the null sender', async () => {
    const { queueId } = await submitter.submit(envelope('alice@example.test'), Readable.from([REPORT]));
    assert.ok(queueId);
    const m = await store.getMessage(queueId);
    assert.ok(m);
    assert.equal(m.sender, '');
    assert.deepEqual(
      m.recipients.map((r) => [r.address, r.nextHop, r.status]),
      [['alice@example.test', { type: 'mailbox', mailbox: 'alice@example.test' }, 'pending']],
    );
    assert.deepEqual(m.origin, {
      connector: 'dsn',
      clientIp: '127.0.0.1',
      clientHelo: 'mx.example.test',
      tls: false,
      generated: true,
    });
    assert.equal(m.messageId, '<dsn.1@mx.example.test>');
    assert.equal(m.subject, 'Undeliverable: hi');
    assert.equal(m.bodyType, '7BIT');
    assert.deepEqual(await buffer(store.readBody(queueId)), REPORT);
    assert.equal(queued, 1, 'delivery was not woken');
  });

  it('follows an alias to its mailbox, keeping the address as the ORCPT', async () => {
    const { queueId } = await submitter.submit(envelope('postmaster@example.test'), Readable.from([REPORT]));
    const m = await store.getMessage(queueId!);
    assert.deepEqual(
      m?.recipients.map((r) => [r.address, r.nextHop.type, r.orcpt]),
      [['alice@example.test', 'mailbox', 'rfc822;postmaster@example.test']],
    );
  });

  it('routes a report for a remote sender as remote mail', async () => {
    const { queueId } = await submitter.submit(envelope('Someone@Remote.TEST'), Readable.from([REPORT]));
    const m = await store.getMessage(queueId!);
    assert.deepEqual(
      m?.recipients.map((r) => [r.address, r.nextHop]),
      [['Someone@remote.test', { type: 'unreachable', domain: 'remote.test' }]],
    );
  });

  it('drops a report for an address of ours that does not exist, queuing nothing', async () => {
    let read = false;
    const body = new Readable({
      read() {
        read = true;
        this.push(null);
      },
    });
    const result = await submitter.submit(envelope('nobody@example.test'), body);
    assert.deepEqual(result, { queueId: undefined });
    assert.equal(read, false, 'the report was built for nothing');
    assert.equal((await store.countRecipients()).pending, 0);
    assert.equal(queued, 0);
  });

  it('streams a large report into the queue no faster than the queue writes it', async () => {
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const total = 64;
    let produced = 0;
    let written = 0;
    let maxAhead = 0;
    const body = new Readable({
      highWaterMark: 64 * 1024,
      read() {
        if (produced === total) return void this.push(null);
        produced++;
        maxAhead = Math.max(maxAhead, produced * chunk.length - written);
        this.push(chunk);
      },
    });
    // The real sink, with every write made slow, as a busy disk would.
    const real = new Map<BodyWriter, BodyWriter>();
    const slow: MessageSink = {
      openBody: async () => {
        const writer = await sink.openBody();
        const wrapper: BodyWriter = {
          get id() {
            return writer.id;
          },
          get size() {
            return writer.size;
          },
          async write(data: Buffer) {
            await new Promise((r) => setTimeout(r, 2));
            await writer.write(data);
            written += data.length;
          },
          abort: () => writer.abort(),
        };
        real.set(wrapper, writer);
        return wrapper;
      },
      submit: (writer, env) => sink.submit(real.get(writer)!, env),
    };
    const streaming = new SinkSubmitter({
      sink: slow,
      directory: new FakeDirectory(),
      reportingMta: 'mx.example.test',
    });
    const { queueId } = await streaming.submit(envelope('alice@example.test'), body);
    assert.ok(maxAhead <= 4 * chunk.length, `the report was read ${maxAhead} bytes ahead of the queue`);
    assert.equal((await store.getMessage(queueId!))?.size, total * chunk.length);
    assert.deepEqual(
      await buffer(store.readBody(queueId!)),
      Buffer.concat(Array.from({ length: total }, () => chunk)),
    );
  });

  it('throws away the partial body when the report fails while being read', async () => {
    const body = new Readable({
      read() {
        this.push(Buffer.alloc(100 * 1024, 0x62));
        this.destroy(new Error('original vanished'));
      },
    });
    await assert.rejects(submitter.submit(envelope('alice@example.test'), body), /original vanished/);
    assert.equal((await store.countRecipients()).pending, 0);
    assert.deepEqual(await readdir(join(dir, 'incoming')), []);
    assert.equal(queued, 0);
  });
});
