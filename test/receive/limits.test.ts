import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connector, type ReceiveHarness, startReceiveHarness } from '../helpers/receive-fakes.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';

/** Every receive limit answers with its own code, and nothing over a limit is stored. */
describe('receive connector limits', () => {
  let h: ReceiveHarness;
  before(async () => {
    h = await startReceiveHarness([
      connector({
        name: 'Small',
        limits: {
          maxMessageSize: 2000,
          maxRecipients: 2,
          maxHeaderSize: 600,
          maxHopCount: 3,
          maxProtocolErrors: 2,
          maxCommandLength: 512,
        },
      }),
      connector({ name: 'Idle', limits: { inactivityTimeout: 300 } }),
      connector({ name: 'OnePerSource', limits: { maxConnectionsPerSource: 1 } }),
      connector({ name: 'Short', limits: { connectionTimeout: 400 } }),
      connector({ name: 'TwoInTotal', limits: { maxConnections: 2 } }),
      connector({
        name: 'Trusted',
        permissionGroups: { anonymous: ['submit', 'bypassSizeLimit'] },
        limits: { maxMessageSize: 100 },
      }),
    ]);
  });
  after(() => h.close());

  async function ready(name = 'Small'): Promise<SmtpTestClient> {
    const c = await SmtpTestClient.connect(h.port(name));
    await c.greeting();
    await c.command('EHLO client.test');
    return c;
  }

  async function transaction(c: SmtpTestClient) {
    assert.equal((await c.command('MAIL FROM:<a@remote.test>')).code, 250);
    assert.equal((await c.command('RCPT TO:<bob@example.test>')).code, 250);
    assert.equal((await c.command('DATA')).code, 354);
  }

  it('refuses a declared SIZE over the limit at MAIL with 552 5.3.4', async () => {
    const c = await ready();
    const r = await c.command('MAIL FROM:<a@remote.test> SIZE=2001');
    assert.equal(r.code, 552);
    assert.match(r.text, /^5\.3\.4 /);
    assert.equal((await c.command('MAIL FROM:<a@remote.test> SIZE=2000')).code, 250);
    c.close();
  });

  it('reads an oversized message to its end, refuses it with 552 5.3.4 and stores nothing', async () => {
    const before = (await h.messages()).length;
    const c = await ready();
    await transaction(c);
    const r = await c.command(`Subject: big\r\n\r\n${'x'.repeat(70)}\r\n`.repeat(40).concat('.'));
    assert.equal(r.code, 552);
    assert.match(r.text, /^5\.3\.4 /);
    assert.equal((await c.command('NOOP')).code, 250, 'the session goes on');
    assert.equal((await h.messages()).length, before);
    c.close();
  });

  it('answers 452 4.5.3 past the recipient limit and keeps the recipients already accepted', async () => {
    const c = await ready();
    await c.command('MAIL FROM:<a@remote.test>');
    assert.equal((await c.command('RCPT TO:<bob@example.test>')).code, 250);
    assert.equal((await c.command('RCPT TO:<alice@example.test>')).code, 250);
    const third = await c.command('RCPT TO:<postmaster@example.test>');
    assert.equal(third.code, 452);
    assert.equal(third.text, '4.5.3 Too many recipients');
    await c.command('DATA');
    assert.equal((await c.command('x\r\n.')).code, 250);
    c.close();
  });

  it('refuses a header section over the limit with 552 5.3.4', async () => {
    const c = await ready();
    await transaction(c);
    const headers = Array.from({ length: 12 }, (_, i) => `X-Filler-${i}: ${'y'.repeat(60)}`).join('\r\n');
    const r = await c.command(`${headers}\r\n\r\nbody\r\n.`);
    assert.equal(r.code, 552);
    c.close();
  });

  it('refuses a message with more Received headers than the hop limit with 554 5.4.6', async () => {
    const c = await ready();
    await transaction(c);
    const hops = Array.from({ length: 4 }, (_, i) => `Received: from hop${i}.test by x; date`).join('\r\n');
    const r = await c.command(`${hops}\r\nSubject: loop\r\n\r\nbody\r\n.`);
    assert.equal(r.code, 554);
    assert.match(r.text, /^5\.4\.6 /);
    c.close();
  });

  it('refuses an over-long command line with 500 5.5.2 and resynchronises on the next CRLF', async () => {
    const c = await ready();
    const r = await c.command(`NOOP ${'z'.repeat(600)}`);
    assert.equal(r.code, 500);
    assert.match(r.text, /^5\.5\.2 Line too long/);
    c.close();
    const d = await ready();
    d.write(`NOOP ${'z'.repeat(5000)}`);
    assert.equal((await d.reply()).code, 500, 'an unterminated line is refused once it passes the limit');
    d.write('still the same line\r\nNOOP\r\n');
    assert.equal((await d.reply()).code, 250);
    d.close();
  });

  it('disconnects with 421 4.7.0 after too many protocol errors', async () => {
    const c = await ready();
    assert.equal((await c.command('BOGUS1')).code, 500);
    assert.equal((await c.command('BOGUS2')).code, 500);
    assert.equal((await c.command('BOGUS3')).code, 500);
    const bye = await c.reply();
    assert.equal(bye.code, 421);
    assert.match(bye.text, /^4\.7\.0 /);
    await c.closed();
  });

  it('closes an idle session with 421 4.4.2 after the inactivity timeout', async () => {
    const c = await ready('Idle');
    const r = await c.reply(3000);
    assert.equal(r.code, 421);
    assert.match(r.text, /^4\.4\.2 /);
    await c.closed();
  });

  it('ends a session that outlasts the connection timeout, however busy', async () => {
    const c = await ready('Short');
    const started = Date.now();
    let last = await c.command('NOOP');
    while (last.code === 250 && Date.now() - started < 3000) last = await c.command('NOOP');
    assert.equal(last.code, 421);
    c.close();
  });

  it('refuses a second connection from the same source with 421 4.3.2', async () => {
    const first = await ready('OnePerSource');
    const second = await SmtpTestClient.connect(h.port('OnePerSource'));
    const r = await second.greeting();
    assert.equal(r.code, 421);
    assert.match(r.text, /^4\.3\.2 /);
    first.close();
    await new Promise((res) => setTimeout(res, 50));
    const third = await SmtpTestClient.connect(h.port('OnePerSource'));
    assert.equal((await third.greeting()).code, 220, 'the slot is free again once the first session ends');
    third.close();
  });

  it('refuses connections past the connector total with 421 4.3.2', async () => {
    const first = await ready('TwoInTotal');
    const second = await ready('TwoInTotal');
    const third = await SmtpTestClient.connect(h.port('TwoInTotal'));
    const r = await third.greeting();
    assert.equal(r.code, 421);
    assert.match(r.text, /^4\.3\.2 /);
    first.close();
    second.close();
  });

  it('lets a session with bypassSizeLimit send past the message size limit', async () => {
    const c = await ready('Trusted');
    assert.equal((await c.command('MAIL FROM:<a@remote.test> SIZE=5000')).code, 250);
    await c.command('RCPT TO:<bob@example.test>');
    await c.command('DATA');
    assert.equal((await c.command(`Subject: big\r\n\r\n${'x'.repeat(2000)}\r\n.`)).code, 250);
    c.close();
  });

  it('counts malformed parameters and addresses as protocol errors', async () => {
    const c = await ready();
    assert.equal((await c.command('MAIL FROM:<a@remote.test> SIZE=abc')).code, 555);
    assert.equal((await c.command('MAIL FROM:<not an address>')).code, 501);
    assert.equal((await c.command('MAIL FROM:<a@remote.test> BODY=9BIT')).code, 555);
    assert.equal((await c.reply()).code, 421);
    await c.closed();
  });
});
