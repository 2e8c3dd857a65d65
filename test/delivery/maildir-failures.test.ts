import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { systemClock } from '../../src/core/clock.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { MailboxDeliveryAgent } from '../../src/delivery/mailbox-agent.ts';
import { replyForWriteError } from '../../src/delivery/maildir-errors.ts';
import { crlfToLf } from '../../src/delivery/maildir-format.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';
import { mailboxJob } from './delivery-job.ts';

const HEADERS = Buffer.from('Received: from x\r\n\tby y\r\nSubject: hi\r\n\r\n');

function body(size: number): Buffer {
  const data = Buffer.alloc(size, 0x61);
  for (let i = 78; i < size; i += 80) data.write('\r\n', i - 1);
  return Buffer.concat([HEADERS, data]);
}

/** A stream that yields `good` bytes and then fails, as a body file that breaks under us would. */
function failingBody(good: number): Readable {
  return Readable.from(
    (async function* () {
      yield body(good);
      throw Object.assign(new Error('read failed'), { code: 'EIO' });
    })(),
  );
}

async function leftovers(maildir: string): Promise<string[]> {
  const names: string[] = [];
  for (const sub of ['tmp', 'new', 'cur']) {
    try {
      names.push(...(await readdir(join(maildir, sub))).map((n) => `${sub}/${n}`));
    } catch {
      // A folder that was never made holds nothing.
    }
  }
  return names;
}

/**
 * A failed mailbox delivery is transient (the queue retries it), says why in the reply, and
 * leaves no partial file in tmp/ or new/ — whether the body is written by a writer thread
 * (small) or streamed (large).
 */
describe('Maildir delivery failures', () => {
  let root: string;
  let agent: MailboxDeliveryAgent;
  before(async () => {
    root = await makeTempDir('ferrymail-maildir-fail-');
    agent = new MailboxDeliveryAgent({
      mailboxRoot: root,
      nodeFqdn: 'mx.test',
      clock: systemClock,
      logger: silentLogger,
    });
  });
  after(async () => {
    await agent.close();
    await removeDir(root);
  });

  it('maps quota, disk-full and other I/O errors to their transient replies', () => {
    assert.equal(replyForWriteError('EDQUOT'), '452 4.2.2 Mailbox full');
    assert.equal(replyForWriteError('ENOSPC'), '452 4.3.1 Insufficient system resources');
    assert.equal(replyForWriteError('EIO'), '451 4.3.0 Mailbox delivery failed (EIO)');
    assert.equal(replyForWriteError('bad\r\ncode'), '451 4.3.0 Mailbox delivery failed (EUNKNOWN)');
  });

  it('removes the partial file when a streamed body fails half-way', async () => {
    const size = 3 * 1024 * 1024;
    const results = await agent.deliver(mailboxJob('s@remote.test', ['halfway@example.test'], size), () =>
      failingBody(size / 2),
    );
    assert.deepEqual(results.get(0), {
      kind: 'transient',
      response: '451 4.3.0 Mailbox delivery failed (EIO)',
    });
    assert.deepEqual(await leftovers(join(root, 'example.test', 'halfway', 'Maildir')), []);
  });

  it('reports an unreadable queued body as transient for every recipient and writes nothing', async () => {
    const results = await agent.deliver(
      mailboxJob('s@remote.test', ['r1@example.test', 'r2@example.test']),
      () => failingBody(100),
    );
    for (const index of [0, 1])
      assert.deepEqual(results.get(index), {
        kind: 'transient',
        response: '451 4.3.0 Queued message unreadable (EIO)',
      });
    for (const user of ['r1', 'r2'])
      assert.deepEqual(await leftovers(join(root, 'example.test', user, 'Maildir')), []);
  });

  it('delivers the whole body when the queue understated its size', async () => {
    const real = body(2 * 1024 * 1024);
    const results = await agent.deliver(mailboxJob('s@remote.test', ['understated@example.test'], 100), () =>
      Readable.from([real.subarray(0, 1_000_000), real.subarray(1_000_000)]),
    );
    assert.equal(results.get(0)?.kind, 'delivered');
    const folder = join(root, 'example.test', 'understated', 'Maildir', 'new');
    const [name] = await readdir(folder);
    const content = await readFile(join(folder, name!));
    const expected = Buffer.concat([
      Buffer.from('Return-Path: <s@remote.test>\nDelivered-To: understated@example.test\n'),
      crlfToLf(real),
    ]);
    assert.ok(content.equals(expected));
    assert.ok(name!.endsWith(`,S=${expected.length}`));
  });

  it('keeps a sender with line breaks to one Return-Path line', async () => {
    await agent.deliver(mailboxJob('a\r\nX-Injected: yes@remote.test', ['inject@example.test']), () =>
      Readable.from([body(10)]),
    );
    const folder = join(root, 'example.test', 'inject', 'Maildir', 'new');
    const [name] = await readdir(folder);
    const content = (await readFile(join(folder, name!))).toString('latin1');
    assert.ok(
      content.startsWith(
        'Return-Path: <aX-Injected: yes@remote.test>\nDelivered-To: inject@example.test\nReceived:',
      ),
    );
  });
});

/** A real full disk: a 64 KB tmpfs as the mailbox root (needs root and mount). */
const canMount =
  process.getuid?.() === 0 && spawnSync('sh', ['-c', 'command -v mount && command -v umount']).status === 0;

describe('Maildir delivery on a full disk', {
  skip: canMount ? false : 'needs root and mount(8) for a tiny tmpfs',
}, () => {
  let dir: string;
  let root: string;
  let mounted = false;
  let agent: MailboxDeliveryAgent;
  before(async () => {
    dir = await makeTempDir('ferrymail-maildir-full-');
    root = join(dir, 'mail');
    await mkdir(root);
    mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', root]).status === 0;
    agent = new MailboxDeliveryAgent({
      mailboxRoot: root,
      nodeFqdn: 'mx.test',
      clock: systemClock,
      logger: silentLogger,
    });
  });
  after(async () => {
    await agent.close();
    if (mounted) spawnSync('umount', [root]);
    await removeDir(dir);
  });

  for (const [label, size] of [
    ['small (writer thread)', 200 * 1024],
    ['large (streamed)', 2 * 1024 * 1024],
  ] as const) {
    it(`answers 452 4.3.1 for a ${label} body and leaves nothing behind`, async (t) => {
      if (!mounted) return t.skip('mount -t tmpfs refused here');
      const results = await agent.deliver(mailboxJob('s@remote.test', ['full@example.test'], size), () =>
        Readable.from([body(size)]),
      );
      assert.deepEqual(results.get(0), {
        kind: 'transient',
        response: '452 4.3.1 Insufficient system resources',
      });
      assert.deepEqual(await leftovers(join(root, 'example.test', 'full', 'Maildir')), []);
    });
  }

  it('still delivers a message that fits once the failures are cleaned up', async (t) => {
    if (!mounted) return t.skip('mount -t tmpfs refused here');
    const results = await agent.deliver(mailboxJob('s@remote.test', ['full@example.test'], 1000), () =>
      Readable.from([body(1000)]),
    );
    assert.equal(results.get(0)?.kind, 'delivered');
  });
});
