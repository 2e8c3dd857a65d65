import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { QueueUnavailableError } from '../../src/queue/types.ts';
import { connector, type ReceiveHarness, startReceiveHarness } from '../helpers/receive-fakes.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';

/** When the queue cannot take a message, the client is told to retry and nothing is kept. */
describe('a queue that cannot take the message', () => {
  let h: ReceiveHarness;
  before(async () => {
    h = await startReceiveHarness([connector()]);
  });
  after(() => h.close());

  async function send(): Promise<{ code: number; text: string }> {
    const c = await SmtpTestClient.connect(h.port());
    await c.greeting();
    await c.command('EHLO client.test');
    await c.command('MAIL FROM:<a@remote.test>');
    await c.command('RCPT TO:<bob@example.test>');
    await c.command('DATA');
    const r = await c.command('Subject: x\r\n\r\ny\r\n.');
    c.close();
    return r;
  }

  it('answers 452 4.3.1 when the store is out of resources', async () => {
    h.sink.options = { failSubmitWith: new QueueUnavailableError('ENOSPC') };
    const r = await send();
    assert.equal(r.code, 452);
    assert.equal(r.text, '4.3.1 Insufficient system resources');
    assert.equal((await h.messages()).length, 0);
  });

  it('answers 451 4.3.0 on any other failure, never 250', async () => {
    h.sink.options = { failSubmitWith: new Error('disk on fire') };
    const r = await send();
    assert.equal(r.code, 451);
    assert.match(r.text, /^4\.3\.0 /);
    assert.equal((await h.messages()).length, 0);
  });

  it('accepts again once the store recovers', async () => {
    h.sink.options = {};
    assert.equal((await send()).code, 250);
    assert.equal((await h.messages()).length, 1);
  });

  it('keeps the whole message when the client disconnects while it is being committed', async () => {
    h.sink.options = { submitDelayMs: 200 };
    const before = (await h.messages()).length;
    const c = await SmtpTestClient.connect(h.port());
    await c.greeting();
    await c.command('EHLO client.test');
    await c.command('MAIL FROM:<a@remote.test>');
    await c.command('RCPT TO:<bob@example.test>');
    await c.command('DATA');
    c.write('Subject: hasty\r\n\r\nthe whole body\r\n.\r\n');
    c.close();
    await new Promise((r) => setTimeout(r, 600));
    h.sink.options = {};
    const added = (await h.messages()).slice(before);
    assert.equal(added.length, 1);
    assert.match(await h.body(added[0]!.id), /Subject: hasty\r\n\r\nthe whole body\r\n$/);
  });
});
