import assert from 'node:assert/strict';
import { mkdir, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { systemClock } from '../../src/core/clock.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { ProtocolLogWriter } from '../../src/logging/protocol-log.ts';
import { SessionLog } from '../../src/logging/session-log.ts';
import { demoLikeConfig, makeTempDir, removeDir, startTestNode } from '../helpers/node-fixture.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';
import { readLogFolder, waitForRecords } from './read-log.ts';

const DAY = 86_400_000;

/**
 * Protocol log files rotate by size (a new file, with its header, once the current one would
 * pass maxFileSize; lines are never split) and are deleted by age (maxAge, at start and hourly)
 * and by the folder's total size (maxDirectorySize, oldest first).
 */
describe('protocol log rotation and retention', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await removeDir(d);
  });
  async function tempDir(): Promise<string> {
    const d = await makeTempDir('ferrymail-protolog-files-');
    dirs.push(d);
    return d;
  }

  it('starts a second file when the first is full, each with its header, no line split', async () => {
    const dir = await tempDir();
    const base = await demoLikeConfig(dir);
    const t = await startTestNode({
      dir,
      config: {
        ...base,
        receiveConnectors: [{ ...base.receiveConnectors[0], protocolLogging: 'verbose' }],
        protocolLog: { maxFileSize: '4KB' },
      },
    });
    const receiveDir = join(dir, 'data', 'logs', 'protocol', 'SmtpReceive');
    try {
      const c = await SmtpTestClient.connect(t.port('Default'));
      await c.greeting();
      await c.command('EHLO rotation.example.test');
      // About 60 bytes of data per line and as much again around it: 80 lines are over 8 KB.
      for (let i = 0; i < 80; i++)
        await c.command(`NOOP padding-${String(i).padStart(3, '0')}-${'x'.repeat(40)}`);
      await c.command('QUIT');
      c.close();
      await waitForRecords(receiveDir, (rs) => rs.some((r) => r.event === '-'));
    } finally {
      await t.stop();
    }
    const files = await readLogFolder(receiveDir);
    assert.ok(files.length >= 2, `a second file once the first is full (found ${files.length})`);
    for (const f of files) {
      assert.match(f.name, /^RECV\d{10}-\d+\.LOG$/);
      assert.equal(f.header[0], '#Software: Ferrymail', `${f.name} starts with the header`);
      assert.equal(f.header.length, 5);
      assert.ok(Buffer.byteLength(f.raw) <= 4096, `${f.name} is within maxFileSize`);
    }
    // parseLogFile refused any line that was cut; together the files hold the whole session.
    const records = files.flatMap((f) => f.records);
    assert.deepEqual(
      records.map((r) => r.sequence),
      records.map((_, i) => i),
      'every line, in order, none lost between files',
    );
    assert.equal(records.filter((r) => r.data.startsWith('NOOP padding-')).length, 80);
    const counters = files.map((f) => Number(/-(\d+)\.LOG$/.exec(f.name)![1]));
    assert.deepEqual(
      counters,
      [...new Set(counters)].sort((a, b) => a - b),
      'counted up: -1, -2, …',
    );
  });

  it('deletes files older than maxAge at start, and keeps younger ones and other files', async () => {
    const dir = await tempDir();
    const receiveDir = join(dir, 'data', 'logs', 'protocol', 'SmtpReceive');
    await mkdir(receiveDir, { recursive: true });
    const old = join(receiveDir, 'RECV2026100100-1.LOG');
    const young = join(receiveDir, 'RECV2026112000-1.LOG');
    const other = join(receiveDir, 'notes.txt');
    for (const f of [old, young, other]) await writeFile(f, '#Software: Ferrymail\r\n');
    const now = Date.now();
    await utimes(old, new Date(now - 31 * DAY), new Date(now - 31 * DAY));
    await utimes(young, new Date(now - 29 * DAY), new Date(now - 29 * DAY));
    await utimes(other, new Date(now - 400 * DAY), new Date(now - 400 * DAY));
    const base = await demoLikeConfig(dir);
    const t = await startTestNode({
      dir,
      config: { ...base, receiveConnectors: [{ ...base.receiveConnectors[0], protocolLogging: 'verbose' }] },
    });
    await t.stop();
    const left = await readdir(receiveDir);
    assert.ok(!left.includes('RECV2026100100-1.LOG'), 'older than the default 30 days: deleted');
    assert.ok(left.includes('RECV2026112000-1.LOG'), '29 days old: kept');
    assert.ok(left.includes('notes.txt'), 'files that are not protocol logs are never touched');
  });

  it('deletes the oldest files first while the folder is over maxDirectorySize', async () => {
    const dir = join(await tempDir(), 'SmtpSend');
    await mkdir(dir, { recursive: true });
    const now = Date.now();
    const names = ['SEND2026112801-1.LOG', 'SEND2026112901-1.LOG', 'SEND2026113001-1.LOG'];
    for (const [i, name] of names.entries()) {
      await writeFile(join(dir, name), 'x'.repeat(1000));
      const when = new Date(now - (3 - i) * DAY);
      await utimes(join(dir, name), when, when);
    }
    const writer = new ProtocolLogWriter({
      dir,
      kind: 'send',
      maxFileSize: 10_000,
      maxDirectorySize: 2500,
      maxAge: 30 * DAY,
      clock: systemClock,
      logger: silentLogger,
    });
    await writer.start();
    assert.deepEqual((await readdir(dir)).sort(), names.slice(1), 'the oldest went; 2000 bytes fit in 2500');
    await writer.close();
  });

  it('starts a new file after a restart instead of writing into an older one', async () => {
    const dir = join(await tempDir(), 'SmtpReceive');
    const open = async () => {
      const w = new ProtocolLogWriter({
        dir,
        kind: 'receive',
        maxFileSize: 1_000_000,
        maxDirectorySize: 10_000_000,
        maxAge: DAY,
        clock: systemClock,
        logger: silentLogger,
      });
      await w.start();
      const log = new SessionLog({ sink: w, role: 'receive', connector: 'C', sessionId: 'S', now: Date.now });
      log.connect('a:1', 'b:2');
      await w.close();
    };
    await open();
    await open();
    const files = await readLogFolder(dir);
    assert.equal(files.length, 2);
    assert.ok(files.every((f) => f.header.length === 5 && f.records.length === 1));
    assert.ok((await stat(join(dir, files[1]!.name))).size > 0);
  });
});
