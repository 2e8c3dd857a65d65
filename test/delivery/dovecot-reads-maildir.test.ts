import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { systemClock } from '../../src/core/clock.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { MailboxDeliveryAgent } from '../../src/delivery/mailbox-agent.ts';
import type { DeliveryJob } from '../../src/queue/types.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';

const hasDovecot = spawnSync('sh', ['-c', 'command -v dovecot && command -v doveadm']).status === 0;
const isRoot = process.getuid?.() === 0;

function job(size: number): DeliveryJob {
  const recipient = {
    index: 0,
    address: 'bob@example.test',
    nextHop: { type: 'mailbox' as const, mailbox: 'bob@example.test' },
    status: 'active' as const,
    attempts: 0,
    nextAttemptAt: 0,
    updatedAt: 0,
  };
  return {
    message: {
      id: 'DOVECOT',
      sender: 'sender@remote.test',
      receivedAt: 0,
      expiresAt: 0,
      size,
      dsn: {},
      bodyType: '8BITMIME',
      smtpUtf8: false,
      origin: { connector: 'x', clientIp: '127.0.0.1', clientHelo: 'x', tls: false },
      recipients: [recipient],
    },
    recipients: [recipient],
  };
}

/**
 * Our Maildir is the standard one: Dovecot (the IMAP server most sites put in front of it)
 * reads what we deliver, small messages (written by the writer threads) and large ones
 * (streamed), and agrees with the sizes in the file names. `.ci/run` installs dovecot-core.
 */
describe('Dovecot reads the Maildir we deliver', {
  skip: !hasDovecot || !isRoot ? 'needs dovecot-core and root (installed by .ci/run)' : false,
}, () => {
  let dir: string;
  let conf: string;
  before(async () => {
    dir = await makeTempDir('ferrymail-dovecot-');
    await chmod(dir, 0o755);
    const agent = new MailboxDeliveryAgent({
      mailboxRoot: join(dir, 'mail'),
      nodeFqdn: 'mx.test',
      clock: systemClock,
      logger: silentLogger,
    });
    const small = Buffer.from('Received: from x\r\n\tby y\r\nSubject: small one\r\n\r\nbody line\r\n');
    const big = Buffer.from(`Subject: big one\r\n\r\n${`${'z'.repeat(70)}\r\n`.repeat(20_000)}`);
    assert.equal(
      (await agent.deliver(job(small.length), () => Readable.from([small]))).get(0)?.kind,
      'delivered',
    );
    assert.equal(
      (await agent.deliver(job(big.length), () => Readable.from([big]))).get(0)?.kind,
      'delivered',
    );
    await agent.close();
    // Dovecot will not run mail processes as root: the mailbox belongs to nobody here.
    execFileSync('chown', ['-R', '65534:65534', join(dir, 'mail')]);
    conf = join(dir, 'dovecot.conf');
    await writeFile(
      conf,
      `log_path = ${dir}/dovecot.log
base_dir = ${dir}/run
state_dir = ${dir}/state
protocols =
listen = 127.0.0.1
ssl = no
mail_location = maildir:~/Maildir
first_valid_uid = 1
passdb {
  driver = static
  args = password=unused
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=${dir}/mail/example.test/bob
}
`,
    );
    execFileSync('dovecot', ['-c', conf], { stdio: 'ignore' });
  });
  after(async () => {
    if (conf) spawnSync('dovecot', ['-c', conf, 'stop'], { stdio: 'ignore' });
    if (dir) await removeDir(dir);
  });

  it('lists both messages with their subjects and the physical sizes our file names carry', () => {
    let output = '';
    for (let attempt = 0; attempt < 20 && !output.includes('size.physical'); attempt++) {
      const r = spawnSync(
        'doveadm',
        ['-c', conf, 'fetch', '-u', 'bob', 'hdr.subject size.physical', 'mailbox', 'INBOX', 'all'],
        {
          encoding: 'utf8',
        },
      );
      output = r.stdout;
      assert.doesNotMatch(r.stderr, /Error/, r.stderr);
      if (!output.includes('size.physical')) spawnSync('sleep', ['0.2']);
    }
    const messages = output
      .split(/\n(?=hdr\.subject:)/)
      .map((block) => ({
        subject: /hdr\.subject: (.*)/.exec(block)?.[1],
        size: Number(/size\.physical: (\d+)/.exec(block)?.[1]),
      }))
      .sort((a, b) => a.size - b.size);
    assert.deepEqual(
      messages.map((m) => m.subject),
      ['small one', 'big one'],
    );
    const names = execFileSync('ls', [join(dir, 'mail', 'example.test', 'bob', 'Maildir', 'new')], {
      encoding: 'utf8',
    })
      .trim()
      .split('\n')
      .map((n) => Number(/,S=(\d+)/.exec(n)?.[1]))
      .sort((a, b) => a - b);
    assert.deepEqual(
      messages.map((m) => m.size),
      names,
    );
  });
});
