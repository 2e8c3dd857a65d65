import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { connector, type ReceiveHarness, startReceiveHarness } from '../helpers/receive-fakes.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';

/**
 * No input from the network can raise an uncaught exception: this process is the server, so an
 * exception anywhere in a session would end the test run. Random bytes, random command lines
 * and random data, in every state, then an ordinary transaction must still work.
 */
describe('random input from clients', () => {
  let h: ReceiveHarness;
  before(async () => {
    h = await startReceiveHarness([connector({ limits: { maxProtocolErrors: 1000 } })]);
  });
  after(() => h.close());

  const prefixes = [
    '',
    'EHLO fuzz.test\r\n',
    'EHLO fuzz.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.test>\r\n',
    'EHLO fuzz.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n',
    'EHLO fuzz.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.test>\r\nBDAT 100\r\n',
    'EHLO fuzz.test\r\nAUTH LOGIN\r\n',
  ];
  const verbs = ['MAIL FROM:', 'RCPT TO:', 'EHLO', 'BDAT', 'AUTH PLAIN', 'STARTTLS', 'DATA', 'VRFY', 'RSET'];

  it('survives 300 sessions of garbage in every protocol state', async () => {
    for (let i = 0; i < 300; i++) {
      const c = await SmtpTestClient.connect(h.port());
      await c.greeting();
      const garbage = randomBytes(1 + Math.floor(Math.random() * 2000));
      const verb = verbs[i % verbs.length]!;
      c.write(
        Buffer.concat([
          Buffer.from(prefixes[i % prefixes.length]!),
          Buffer.from(`${verb}`),
          garbage,
          Buffer.from('\r\n'),
        ]),
      );
      c.write(
        Buffer.from(
          `${verb}<${garbage.toString('latin1').slice(0, 80)}> X=${garbage.toString('base64').slice(0, 40)}\r\n`,
        ),
      );
      await new Promise((r) => setTimeout(r, 2));
      c.close();
    }
    const c = await SmtpTestClient.connect(h.port());
    await c.greeting();
    await c.command('EHLO after.test');
    assert.equal((await c.command('MAIL FROM:<a@remote.test>')).code, 250);
    assert.equal((await c.command('RCPT TO:<bob@example.test>')).code, 250);
    assert.equal((await c.command('DATA')).code, 354);
    assert.equal((await c.command('Subject: still here\r\n\r\nok\r\n.')).code, 250);
    c.close();
  });
});
