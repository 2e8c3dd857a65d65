import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
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
 */
describe('a 250 survives SIGKILL', () => {
  it('delivers every acknowledged message after the process is killed right after the 250', async () => {
    const dir = await makeTempDir();
    const port = await freePort();
    const configFile = await writeConfigFile(dir, await demoLikeConfig(dir, { default: port, client: 0 }));
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
          }
          c.close();
        } finally {
          child.kill('SIGKILL');
          await exited;
        }
      }
      const child = startChild(configFile);
      const exited = once(child, 'exit');
      try {
        // At least once: a message delivered just before a kill may come again, so wait for
        // every acknowledged tag rather than for a count.
        const maildir = `${dir}/data/mailboxes/example.test/bob/Maildir`;
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
