import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { systemClock } from '../../src/core/clock.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { MailboxDeliveryAgent } from '../../src/delivery/mailbox-agent.ts';
import { mailboxFolder } from '../../src/delivery/maildir.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';
import { mailboxJob as job } from './delivery-job.ts';

/** Mailbox delivery writes standard Maildir: tmp → fsync → new, one copy per recipient. */
describe('Maildir delivery', () => {
  let root: string;
  let agent: MailboxDeliveryAgent;
  before(async () => {
    root = await makeTempDir('ferrymail-maildir-');
    agent = new MailboxDeliveryAgent({
      mailboxRoot: root,
      nodeFqdn: 'mx.test',
      clock: systemClock,
      logger: silentLogger,
    });
  });
  after(() => removeDir(root));

  const body = 'Received: from x\r\n\tby y\r\nSubject: hi\r\n\r\nline\r\n';

  it('writes Return-Path, Delivered-To and the body with LF endings into new/, named with its size', async () => {
    const results = await agent.deliver(job('s@remote.test', ['one@example.test']), () =>
      Readable.from([Buffer.from(body)]),
    );
    assert.equal(results.get(0)?.kind, 'delivered');
    const folder = join(root, 'example.test', 'one', 'Maildir');
    const [name] = await readdir(join(folder, 'new'));
    assert.ok(name);
    const content = await readFile(join(folder, 'new', name));
    assert.equal(
      content.toString(),
      'Return-Path: <s@remote.test>\nDelivered-To: one@example.test\nReceived: from x\n\tby y\nSubject: hi\n\nline\n',
    );
    assert.match(name, new RegExp(`,S=${content.length}$`));
    assert.deepEqual(await readdir(join(folder, 'tmp')), []);
    assert.deepEqual(await readdir(join(folder, 'cur')), []);
    assert.equal((await stat(folder)).mode & 0o777, 0o700);
  });

  it('writes Return-Path: <> for the null sender and one copy per recipient', async () => {
    const results = await agent.deliver(job('', ['two@example.test', 'three@example.test']), () =>
      Readable.from([Buffer.from(body)]),
    );
    assert.deepEqual(
      [...results.values()].map((r) => r.kind),
      ['delivered', 'delivered'],
    );
    for (const user of ['two', 'three']) {
      const folder = join(root, 'example.test', user, 'Maildir', 'new');
      const files = await readdir(folder);
      assert.equal(files.length, 1);
      assert.match((await readFile(join(folder, files[0]!))).toString(), /^Return-Path: <>\n/);
    }
  });

  it('gives 20 concurrent deliveries to one mailbox 20 distinct files', async () => {
    await Promise.all(
      Array.from({ length: 20 }, () =>
        agent.deliver(job('s@remote.test', ['many@example.test']), () => Readable.from([Buffer.from(body)])),
      ),
    );
    assert.equal((await readdir(join(root, 'example.test', 'many', 'Maildir', 'new'))).length, 20);
  });

  it('keeps a CR that is not followed by LF, including one split across chunks', async () => {
    const chunks = [Buffer.from('a\rb\r'), Buffer.from('\nc\r')];
    await agent.deliver(job('s@remote.test', ['cr@example.test']), () => Readable.from(chunks));
    const folder = join(root, 'example.test', 'cr', 'Maildir', 'new');
    const [name] = await readdir(folder);
    assert.ok((await readFile(join(folder, name!))).toString().endsWith('a\rb\nc\r'));
  });

  it('refuses addresses that would leave the mailbox root or cannot be a folder name', () => {
    for (const bad of [
      '../etc@example.test',
      'a/b@example.test',
      '.hidden@example.test',
      'x@../../tmp',
      'nul\0@example.test',
      '..@example.test',
      'a\\b@example.test',
      'tab\there@example.test',
      'del\x7f@example.test',
      'line\r\nBcc: x@example.test',
      '@example.test',
      'nobody@',
      'nobody',
      `${'é'.repeat(128)}@example.test`,
    ]) {
      assert.equal(mailboxFolder(root, bad), undefined, bad);
    }
    assert.equal(mailboxFolder(root, 'Bob@Example.TEST'), join(root, 'example.test', 'bob', 'Maildir'));
    assert.equal(mailboxFolder(root, 'a..b@example.test'), join(root, 'example.test', 'a..b', 'Maildir'));
  });

  it('reports an unsafe address as a permanent 550 5.1.1 and writes nothing, beside a safe one', async () => {
    const existing = await readdir(root);
    const results = await agent.deliver(
      job('s@remote.test', ['../evil@example.test', 'a/../../evil@example.test', 'safe@unsafe.test']),
      () => Readable.from([Buffer.from(body)]),
    );
    assert.deepEqual(results.get(0), {
      kind: 'permanent',
      response: '550 5.1.1 <../evil@example.test>: no such mailbox',
    });
    assert.equal(results.get(1)?.kind, 'permanent');
    assert.equal(results.get(2)?.kind, 'delivered');
    assert.deepEqual((await readdir(root)).sort(), [...existing, 'unsafe.test'].sort());
    assert.deepEqual(
      (await readdir(join(root, '..'))).filter((n) => n === 'evil'),
      [],
    );
  });

  it('reports a mailbox it cannot write as a transient failure and leaves no file behind', async () => {
    // A file where the tmp/ folder should be: fails for root too, unlike a permission bit.
    const folder = join(root, 'example.test', 'broken', 'Maildir');
    await mkdir(folder, { recursive: true });
    await writeFile(join(folder, 'tmp'), 'not a folder');
    const results = await agent.deliver(job('s@remote.test', ['broken@example.test']), () =>
      Readable.from([Buffer.from(body)]),
    );
    assert.equal(results.get(0)?.kind, 'transient');
    assert.match(results.get(0)?.response ?? '', /^451 4\.3\.0 Mailbox delivery failed \(E[A-Z]+\)$/);
    assert.deepEqual(await readdir(folder), ['tmp']);
  });

  it('recreates a mailbox folder that was removed while the node runs', async () => {
    const folder = join(root, 'example.test', 'removed', 'Maildir');
    const send = () =>
      agent.deliver(job('s@remote.test', ['removed@example.test']), () => Readable.from([Buffer.from(body)]));
    assert.equal((await send()).get(0)?.kind, 'delivered');
    await rm(folder, { recursive: true });
    assert.equal((await send()).get(0)?.kind, 'delivered');
    assert.equal((await readdir(join(folder, 'new'))).length, 1);
  });

  it('streams a 20 MB message without holding it in memory', async () => {
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    for (let i = 63; i < chunk.length; i += 64) chunk[i] = 0x0a;
    const rssBefore = process.memoryUsage().rss;
    const results = await agent.deliver(
      job('s@remote.test', ['large@example.test'], 320 * chunk.length),
      () =>
        Readable.from(
          (function* () {
            for (let i = 0; i < 320; i++) yield chunk;
          })(),
        ),
    );
    assert.equal(results.get(0)?.kind, 'delivered');
    assert.ok(process.memoryUsage().rss - rssBefore < 64 * 1024 * 1024);
    const folder = join(root, 'example.test', 'large', 'Maildir', 'new');
    const [name] = await readdir(folder);
    assert.equal(
      (await stat(join(folder, name!))).size,
      320 * chunk.length + 'Return-Path: <s@remote.test>\nDelivered-To: large@example.test\n'.length,
    );
  });
});
