import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { systemClock } from '../../src/core/clock.ts';
import { createIdGenerator } from '../../src/core/ids.ts';
import { SqliteQueueStore } from '../../src/queue/sqlite-store.ts';
import {
  demoLikeConfig,
  freePort,
  makeTempDir,
  removeDir,
  waitForMessages,
  writeConfigFile,
} from '../helpers/node-fixture.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

function startChild(configFile: string): ChildProcess {
  return spawn(process.execPath, ['src/cli/main.ts', 'start', '--config', configFile], {
    cwd: repoRoot,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

async function connectWhenReady(port: number): Promise<SmtpTestClient> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const c = await SmtpTestClient.connect(port);
      const greeting = await c.greeting();
      assert.equal(greeting.code, 220);
      return c;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/**
 * RFC 5321 §6.1: once the node has said 250 to the end of data it must not lose the message,
 * even if it dies the next instant. Here the process is SIGKILLed the moment a 250 arrives,
 * and the message must be delivered after the restart.
 *
 * So that "delivered after the restart" means something, delivery is impossible until then: the
 * mailbox's Maildir is a plain file (which blocks root too, unlike permissions), every attempt
 * fails transiently, and the queue is checked to still hold every acknowledged message,
 * undelivered, before the obstacle goes and the node starts again.
 */
describe('a 250 survives SIGKILL', () => {
  it('delivers every acknowledged message after the process is killed right after the 250', async () => {
    const dir = await makeTempDir();
    const port = await freePort();
    const config = await demoLikeConfig(dir, { default: port, client: 0 });
    const configFile = await writeConfigFile(dir, { ...config, queue: { mailboxRetryInterval: '500ms' } });
    const maildir = join(dir, 'data', 'mailboxes', 'example.test', 'bob', 'Maildir');
    await mkdir(dirname(maildir), { recursive: true });
    await writeFile(maildir, 'not a folder: delivery into this mailbox fails until it is removed\n');
    const acknowledged: string[] = [];
    try {
      for (let round = 0; round < 3; round++) {
        const child = startChild(configFile);
        const exited = once(child, 'exit');
        try {
          const c = await connectWhenReady(port);
          assert.equal((await c.command('EHLO killer.test')).code, 250);
          for (let i = 0; i < 3; i++) {
            const tag = `r${round}m${i}`;
            assert.equal((await c.command('MAIL FROM:<k@remote.test>')).code, 250);
            assert.equal((await c.command('RCPT TO:<bob@example.test>')).code, 250);
            assert.equal((await c.command('DATA')).code, 354);
            const reply = await c.command(`Subject: ${tag}\r\n\r\nbody ${tag}\r\n.`);
            if (i === 2) child.kill('SIGKILL');
            assert.equal(reply.code, 250, reply.text);
            acknowledged.push(tag);
            // The first messages of a round are tried (and fail) before the kill.
            if (i === 0) await new Promise((r) => setTimeout(r, 300));
          }
          c.close();
        } finally {
          child.kill('SIGKILL');
          await exited;
        }
      }

      // Nothing could be delivered: the mailbox is still the obstacle, and the queue holds every
      // acknowledged message with its recipient not delivered.
      assert.ok((await stat(maildir)).isFile(), 'the obstacle in place of the Maildir is gone');
      const store = new SqliteQueueStore({
        dir: join(dir, 'data', 'queue'),
        clock: systemClock,
        ids: createIdGenerator(systemClock),
        messageExpiration: 86_400_000,
      });
      await store.open();
      try {
        const queued = new Map((await store.listMessages()).map((m) => [m.subject, m.recipients]));
        for (const tag of acknowledged) {
          const recipients = queued.get(tag);
          assert.ok(
            recipients,
            `message ${tag} is not in the queue undelivered: delivered before the kill, or lost`,
          );
          assert.deepEqual(
            recipients.map((r) => [r.address, r.status]),
            [['bob@example.test', 'pending']],
            `message ${tag} was not held back`,
          );
        }
        const tried = [...queued.values()].flat().filter((r) => r.attempts > 0);
        assert.ok(tried.length > 0, 'no delivery was even attempted before the kills');
        for (const r of tried) assert.match(r.lastResponse ?? '', /^451 4\.3\.0 Mailbox delivery failed/);
      } finally {
        await store.close();
      }

      await rm(maildir);
      const child = startChild(configFile);
      const exited = once(child, 'exit');
      try {
        // At least once: a message may come twice, so wait for every acknowledged tag rather
        // than for a count.
        const deadline = Date.now() + 20_000;
        let subjects: string[] = [];
        for (;;) {
          const messages = await waitForMessages(maildir, 0);
          subjects = messages.map((m) => /Subject: (\S+)/.exec(m.toString('latin1'))?.[1] ?? '');
          if (acknowledged.every((tag) => subjects.includes(tag)) || Date.now() > deadline) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        for (const tag of acknowledged)
          assert.ok(subjects.includes(tag), `message ${tag} was acknowledged but lost`);
      } finally {
        child.kill('SIGTERM');
        await exited;
      }
    } finally {
      await removeDir(dir);
    }
  });
});
