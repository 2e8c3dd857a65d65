import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openSmtpConnection } from '../../../src/delivery/smtp/client/index.ts';
import { freePort, makeTempDir, removeDir } from '../../helpers/node-fixture.ts';
import { body, envelope, options } from './fixtures.ts';

const SMTP_SINK = '/usr/sbin/smtp-sink';
const missing = existsSync(SMTP_SINK) ? false : `${SMTP_SINK} is not installed (Debian package postfix)`;

/** Our client against Postfix's own test server, the reference for what a real MTA accepts. */
describe('outbound SMTP against Postfix smtp-sink', { skip: missing }, () => {
  let child: ChildProcess | undefined;
  let dir: string | undefined;
  after(async () => {
    child?.kill();
    if (dir) await removeDir(dir);
  });

  it('sends several pipelined messages on one connection and smtp-sink counts each of them', async () => {
    dir = await makeTempDir('ferrymail-smtp-sink-');
    await chmod(dir, 0o777); // smtp-sink drops to nobody when started as root
    const port = await freePort();
    const asRoot = process.getuid?.() === 0 ? ['-u', 'nobody'] : [];
    child = spawn(SMTP_SINK, [...asRoot, '-c', '-d', join(dir, '%M.'), `127.0.0.1:${port}`, '100'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let counters = '';
    child.stdout!.on('data', (d: Buffer) => {
      counters += d.toString('latin1');
    });
    child.stderr!.on('data', (d: Buffer) => {
      counters += d.toString('latin1');
    });

    let connection: Awaited<ReturnType<typeof openSmtpConnection>> | undefined;
    for (let attempt = 0; !connection; attempt++) {
      try {
        connection = await openSmtpConnection(options(port));
      } catch (error) {
        if (attempt > 50) throw error;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    assert.ok(connection.extensions.has('PIPELINING'));
    const messages = 3;
    for (let i = 0; i < messages; i++) {
      const env = envelope(['one@dest.test', 'two@dest.test'], { dsn: { ret: 'HDRS', envid: `env-${i}` } });
      env.recipients[0]!.notify = ['FAILURE'];
      const r = await connection.send(
        env,
        body(`Subject: message ${i}\r\n\r\n.a line with a dot\r\nbye\r\n`),
      );
      assert.equal(r.data?.code, 250, JSON.stringify(r));
      assert.deepEqual(
        r.recipients.map((x) => x.code),
        [250, 250],
      );
    }
    assert.equal(connection.messagesSent, messages);
    await connection.quit();

    // -c prints its counters whenever a message or a session ends.
    const deadline = Date.now() + 5000;
    while (!/sess=1 quit=1 mesg=3/.test(counters) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    assert.match(counters, /sess=1 quit=1 mesg=3/, `smtp-sink counters: ${JSON.stringify(counters)}`);

    const files = await readdir(dir);
    assert.equal(files.length, messages);
    const dumps = await Promise.all(files.map((f) => readFile(join(dir!, f), 'latin1')));
    for (const dump of dumps) {
      assert.match(dump, /X-Mail-Args: <sender@origin\.test> RET=HDRS ENVID=env-\d/);
      assert.match(dump, /X-Rcpt-Args: <one@dest\.test> NOTIFY=FAILURE/);
      assert.match(dump, /\n\.a line with a dot\n/, 'smtp-sink removed the dot we added');
    }
  });
});
