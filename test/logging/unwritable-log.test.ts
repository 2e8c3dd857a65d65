import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load.ts';
import { systemClock } from '../../src/core/clock.ts';
import { ProtocolLogWriter } from '../../src/logging/protocol-log.ts';
import { type RunningNode, startNode } from '../../src/node.ts';
import { outboundConfig, submit } from '../delivery/smtp-delivery/outbound-fixture.ts';
import { makeTempDir, removeDir, waitForMessages, writeConfigFile } from '../helpers/node-fixture.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';

interface LogEntry {
  level: number;
  msg: string;
  dir?: string;
}

/**
 * A protocol log that cannot be written never costs a message: the node starts, mail is
 * accepted, delivered locally and relayed; the problem is logged once per folder and the log
 * pauses.
 */
describe('an unwritable protocol log', () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  async function start(protocolLog: Record<string, unknown>, prepare?: (dir: string) => Promise<void>) {
    const sink = await SmtpSink.start();
    cleanups.push(() => sink.close());
    const { dir, config } = await outboundConfig(
      [
        {
          name: 'SmartHost',
          addressSpaces: ['*'],
          routing: { type: 'smartHost', hosts: [`127.0.0.1:${sink.port}`] },
          tls: { mode: 'none' },
          protocolLogging: 'verbose',
        },
      ],
      {},
    );
    const receiveConnectors = (config.receiveConnectors as Array<Record<string, unknown>>).map((c) => ({
      ...c,
      protocolLogging: 'verbose',
    }));
    const entries: LogEntry[] = [];
    const logger = pino(
      { level: 'debug' },
      new Writable({
        write(chunk, _encoding, done) {
          for (const line of String(chunk).split('\n')) if (line) entries.push(JSON.parse(line) as LogEntry);
          done();
        },
      }),
    );
    const resolvedLog = { ...protocolLog, dir: String(protocolLog.dir ?? '').replace('<dir>', dir) };
    const file = await writeConfigFile(dir, { ...config, receiveConnectors, protocolLog: resolvedLog });
    await prepare?.(dir);
    const node = await startNode(await loadConfig(file), { logger });
    cleanups.push(async () => {
      await node.stop();
      await removeDir(dir);
    });
    return { node, dir, sink, entries, port: (name: string) => portOf(node, name) };
  }

  function portOf(node: RunningNode, connector: string): number {
    return node.receive.addresses().find((a) => a.connector === connector)!.port;
  }

  const failures = (entries: LogEntry[]) =>
    entries.filter((e) => e.msg.startsWith('protocol log cannot be written'));

  async function deliverOneEach(t: Awaited<ReturnType<typeof start>>, tag: string) {
    const local = await submit(t.port('Default'), 'x@elsewhere.test', ['alice@example.test']);
    assert.ok(local, 'accepted for a local mailbox');
    const relayed = await submit(t.port('Relay'), 'app@example.test', [`${tag}@remote.test`]);
    assert.ok(relayed, 'accepted for relay');
    await t.sink.waitFor(() => t.sink.transactions.some((x) => x.accepted.includes(`${tag}@remote.test`)));
  }

  it('starts and moves mail when the log folder cannot even be created', async () => {
    const t = await start({ dir: '<dir>/not-a-folder/protocol' }, (dir) =>
      writeFile(join(dir, 'not-a-folder'), 'a file where the folder should be'),
    );
    await deliverOneEach(t, 'first');
    await deliverOneEach(t, 'second');
    const maildir = join(t.node.dataDir, 'mailboxes', 'example.test', 'alice', 'Maildir');
    assert.equal((await waitForMessages(maildir, 2)).length, 2, 'both local messages delivered');
    const reported = failures(t.entries);
    assert.ok(reported.length >= 1, 'the problem is logged');
    const perDir = new Map<string, number>();
    for (const e of reported) perDir.set(e.dir ?? '', (perDir.get(e.dir ?? '') ?? 0) + 1);
    for (const [d, n] of perDir) assert.equal(n, 1, `logged once for ${d}, not per line or session`);
    assert.ok(
      reported.every((e) => e.level === 50),
      'at error level',
    );
  });

  it('keeps mail flowing when the folder goes away while the node runs', async () => {
    const t = await start({ dir: '<dir>/plog', maxFileSize: '1KB' });
    await deliverOneEach(t, 'before');
    // The folder is replaced by a file: the next rotation cannot open its file.
    const receiveDir = join(t.dir, 'plog', 'SmtpReceive');
    await rm(receiveDir, { recursive: true, force: true });
    await writeFile(receiveDir, 'not a folder');
    for (let i = 0; i < 3; i++) await deliverOneEach(t, `after${i}`);
    const maildir = join(t.node.dataDir, 'mailboxes', 'example.test', 'alice', 'Maildir');
    assert.equal((await waitForMessages(maildir, 4)).length, 4);
    const reported = failures(t.entries).filter((e) => e.dir === receiveDir);
    assert.equal(reported.length, 1, 'reported once');
  });

  it('a writer whose folder cannot be made starts paused, takes lines and closes without throwing', async () => {
    const dir = await makeTempDir('ferrymail-protolog-writer-');
    cleanups.push(() => removeDir(dir));
    await writeFile(join(dir, 'file'), 'x');
    const entries: LogEntry[] = [];
    const logger = pino(
      { level: 'debug' },
      new Writable({
        write(chunk, _encoding, done) {
          entries.push(JSON.parse(String(chunk)) as LogEntry);
          done();
        },
      }),
    );
    const writer = new ProtocolLogWriter({
      dir: join(dir, 'file', 'SmtpReceive'),
      kind: 'receive',
      maxFileSize: 1000,
      maxDirectorySize: 10_000,
      maxAge: 86_400_000,
      clock: systemClock,
      logger,
    });
    await writer.start();
    assert.equal(writer.paused, true);
    for (let i = 0; i < 100; i++) writer.append(`line ${i}\r\n`);
    await writer.flush();
    await writer.close();
    assert.equal(failures(entries).length, 1, 'one report, however many lines');
  });

  it('lets a session on a logged connector work normally while the log is paused', async () => {
    const t = await start({ dir: '<dir>/blocked/protocol' }, (dir) =>
      writeFile(join(dir, 'blocked'), 'file'),
    );
    const c = await SmtpTestClient.connect(t.port('Default'));
    try {
      assert.equal((await c.greeting()).code, 220);
      assert.equal((await c.command('EHLO client.example.test')).code, 250);
      assert.equal((await c.command('NOOP')).code, 250);
      assert.equal((await c.command('QUIT')).code, 221);
    } finally {
      c.close();
    }
  });
});
