import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  demoLikeConfig,
  makeTempDir,
  newMessages,
  removeDir,
  waitForMessages,
  writeConfigFile,
} from '../helpers/node-fixture.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';

const child = fileURLToPath(new URL('./poison-node-child.ts', import.meta.url));

interface Started {
  process: ChildProcess;
  exited: Promise<[number | null, NodeJS.Signals | null]>;
  /** Resolves with the child's start line, or undefined if it died first. */
  ready: Promise<{ port: number; poison: string[] } | undefined>;
}

function startChild(configFile: string): Started {
  const p = spawn(process.execPath, [child, configFile], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = once(p, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const ready = new Promise<{ port: number; poison: string[] } | undefined>((resolve) => {
    let text = '';
    p.stdout!.on('data', (d: Buffer) => {
      text += d.toString();
      const newline = text.indexOf('\n');
      if (newline >= 0) resolve(JSON.parse(text.slice(0, newline)));
    });
    void exited.then(() => resolve(undefined));
  });
  return { process: p, exited, ready };
}

async function send(port: number, to: string, subject: string): Promise<string> {
  const c = await SmtpTestClient.connect(port);
  try {
    await c.greeting();
    await c.command('EHLO client.remote.test');
    await c.command('MAIL FROM:<sender@remote.test>');
    assert.equal((await c.command(`RCPT TO:<${to}>`)).code, 250);
    await c.command('DATA');
    const reply = await c.command(`Subject: ${subject}\r\n\r\nbody\r\n.`);
    assert.equal(reply.code, 250, reply.text);
    return /queued as ([0-9A-Z]+)/.exec(reply.text)![1]!;
  } finally {
    c.close();
  }
}

describe('a message that crashes the node', () => {
  // Three node starts in child processes: slow on a loaded machine.
  it('is in the Poison queue after the second crash, and the restarted node serves other mail', {
    timeout: 180_000,
  }, async () => {
    const dir = await makeTempDir('ferrymail-poison-crash-');
    const children: ChildProcess[] = [];
    try {
      const config = await writeConfigFile(dir, await demoLikeConfig(dir));
      const alice = `${dir}/data/mailboxes/example.test/alice/Maildir`;

      // 1st run: the message arrives and kills the process when its delivery begins.
      const first = startChild(config);
      children.push(first.process);
      const started = await first.ready;
      assert.ok(started, 'the first node started');
      const id = await send(started.port, 'alice@example.test', 'CRASH-ME please');
      assert.equal((await first.exited)[1], 'SIGKILL');

      // 2nd run: crash count 1, below the threshold: it is tried again and kills the node again.
      const second = startChild(config);
      children.push(second.process);
      assert.equal((await second.exited)[1], 'SIGKILL', 'the second node crashed on the same message');

      // 3rd run: the message is in Poison, not delivered; other mail flows.
      const third = startChild(config);
      children.push(third.process);
      const serving = await third.ready;
      assert.ok(serving, 'the third node started and stayed up');
      assert.deepEqual(serving.poison, [id]);
      await send(serving.port, 'alice@example.test', 'an ordinary message');
      const [delivered] = await waitForMessages(alice, 1);
      assert.match(delivered!.toString(), /Subject: an ordinary message/);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal((await newMessages(alice)).length, 1, 'the poison message was not delivered');
      third.process.stdin!.write('stop\n');
      assert.deepEqual(await third.exited, [0, null]);
    } finally {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await removeDir(dir);
    }
  });
});
