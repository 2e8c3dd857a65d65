import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { systemClock } from '../../src/core/clock.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { ProtocolLogWriter } from '../../src/logging/protocol-log.ts';
import { SessionLog } from '../../src/logging/session-log.ts';
import { demoLikeConfig, removeDir, startTestNode } from '../helpers/node-fixture.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';
import { bySession, readRecords } from './read-log.ts';

const MESSAGES = 2000;
/** Messages per turn: the two connections take turns (ABBA), so load changes hit both alike. */
const BLOCK = 250;
const BODY = 'From: <app@example.test>\r\nSubject: small\r\n\r\nA small message.\r\n.\r\n';

/** A fast folder for state: tmpfs when there is one, so fsync does not drown the difference. */
async function fastTempDir(prefix: string): Promise<string> {
  return mkdtemp(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), prefix));
}

/**
 * What verbose protocol logging costs. Printed, not asserted (timings depend on the machine);
 * the assertions check that both sides did the same work and that the verbose one logged all
 * of it.
 */
describe('protocol logging overhead', () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('2,000 small messages over one connection, without and with verbose logging', {
    timeout: 600_000,
  }, async () => {
    // One node, two connectors alike but for protocolLogging, one connection each, taking
    // turns. The recipient is remote with no send connector (the Unreachable queue): only the
    // receive path (session and commit) is measured.
    const dir = await fastTempDir('ferrymail-overhead-');
    cleanups.push(() => removeDir(dir));
    const base = await demoLikeConfig(dir);
    const connector = (name: string, protocolLogging: string) => ({
      name,
      bindings: ['127.0.0.1:0'],
      permissionGroups: { anonymous: ['submit', 'relay'] },
      tls: { mode: 'none' },
      protocolLogging,
    });
    const t = await startTestNode({
      dir,
      config: { ...base, receiveConnectors: [connector('Off', 'none'), connector('On', 'verbose')] },
    });
    const clients = {
      Off: await SmtpTestClient.connect(t.port('Off')),
      On: await SmtpTestClient.connect(t.port('On')),
    };
    const elapsed = { Off: 0, On: 0 };
    try {
      for (const c of Object.values(clients)) {
        await c.greeting();
        await c.command('EHLO bench.example.test');
      }
      const send = async (c: SmtpTestClient, count: number) => {
        for (let i = 0; i < count; i++) {
          // MAIL, RCPT and DATA pipelined (RFC 2920), then the content.
          c.write('MAIL FROM:<app@example.test>\r\nRCPT TO:<someone@remote.test>\r\nDATA\r\n');
          for (const code of [250, 250, 354]) assert.equal((await c.reply()).code, code);
          c.write(BODY);
          assert.equal((await c.reply()).code, 250);
        }
      };
      await send(clients.Off, 100); // warm-up, not counted
      await send(clients.On, 100);
      for (let done = 0; done < MESSAGES; done += BLOCK) {
        // ABBA order: whichever goes first in a turn pays for what the other left behind.
        const order: Array<'Off' | 'On'> = (done / BLOCK) % 2 === 0 ? ['Off', 'On'] : ['On', 'Off'];
        for (const name of order) {
          const started = performance.now();
          await send(clients[name], BLOCK);
          elapsed[name] += performance.now() - started;
        }
      }
      for (const c of Object.values(clients)) await c.command('QUIT');
    } finally {
      for (const c of Object.values(clients)) c.close();
      await t.stop();
    }
    const records = await readRecords(join(dir, 'data', 'logs', 'protocol', 'SmtpReceive'));
    assert.ok(
      records.every((r) => r.connector === 'On'),
      'the connector with logging off wrote nothing',
    );
    const session = [...bySession(records).values()][0]!;
    // + banner, EHLO and reply, QUIT and reply, -; per message 3 commands, 4 replies, 1 size line.
    assert.equal(
      session.length,
      7 + (MESSAGES + 100) * 8,
      'every event of the verbose session is in the file',
    );
    const rate = (ms: number) => ((MESSAGES / ms) * 1000).toFixed(0);
    console.log(
      [
        `protocol log overhead: ${MESSAGES} messages over one connection each, in turns of ${BLOCK}`,
        `  protocolLogging none:    ${elapsed.Off.toFixed(0)} ms (${rate(elapsed.Off)} msg/s)`,
        `  protocolLogging verbose: ${elapsed.On.toFixed(0)} ms (${rate(elapsed.On)} msg/s)`,
        `  ratio verbose/none: ${(elapsed.On / elapsed.Off).toFixed(3)}`,
      ].join('\n'),
    );
  });

  it('the cost of one line, from the session hook to the file', async () => {
    const dir = await fastTempDir('ferrymail-lines-');
    cleanups.push(() => removeDir(dir));
    const writer = new ProtocolLogWriter({
      dir,
      kind: 'receive',
      maxFileSize: 10 * 1024 * 1024,
      maxDirectorySize: 1024 * 1024 * 1024,
      maxAge: 86_400_000,
      clock: systemClock,
      logger: silentLogger,
    });
    await writer.start();
    const log = new SessionLog({
      sink: writer,
      role: 'receive',
      connector: 'Default',
      sessionId: 'S',
      now: Date.now,
    });
    log.connect('127.0.0.1:25', '127.0.0.1:40000');
    const LINES = 200_000;
    let hooks = 0;
    const started = performance.now();
    for (let i = 0; i < LINES; i += 1000) {
      const t0 = performance.now();
      for (let k = 0; k < 1000; k += 2) {
        log.received('RCPT TO:<someone@remote.test>');
        log.sent('250 2.1.5 Ok\r\n');
      }
      hooks += performance.now() - t0;
      // Sessions log across turns of the event loop; so does this, letting the file keep up.
      await new Promise((r) => setImmediate(r));
    }
    await writer.close();
    const total = performance.now() - started;
    const records = await readRecords(dir);
    assert.equal(records.length, LINES + 1);
    console.log(
      `protocol log line cost: ${((hooks / LINES) * 1000).toFixed(2)} µs per line in the session (building and queueing it), ${((total / LINES) * 1000).toFixed(2)} µs per line including the write to the file`,
    );
  });
});
