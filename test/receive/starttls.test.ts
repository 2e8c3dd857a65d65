import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connector, type ReceiveHarness, startReceiveHarness } from '../helpers/receive-fakes.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';

/** STARTTLS (RFC 3207) and implicit TLS: the upgrade, the reset, and the injection defence. */
describe('TLS on receive connectors', () => {
  let h: ReceiveHarness;
  before(async () => {
    h = await startReceiveHarness([
      connector({ name: 'Starttls' }),
      connector({ name: 'Required', tls: { mode: 'starttls', required: true } }),
      connector({ name: 'Implicit', tls: { mode: 'implicit', required: false } }),
      connector({ name: 'NoTls', tls: { mode: 'none', required: false } }),
    ]);
  });
  after(() => h.close());

  async function ehlo(name: string) {
    const c = await SmtpTestClient.connect(h.port(name));
    await c.greeting();
    return { c, reply: await c.command('EHLO client.test') };
  }

  it('upgrades the session, forgets the EHLO, and no longer offers STARTTLS', async () => {
    const { c, reply } = await ehlo('Starttls');
    assert.ok(reply.lines.includes('STARTTLS'));
    const go = await c.startTls();
    assert.equal(go.text, '2.0.0 Ready to start TLS');
    assert.equal((await c.command('MAIL FROM:<a@remote.test>')).code, 503, 'EHLO state must not survive TLS');
    const after = await c.command('EHLO client.test');
    assert.ok(!after.lines.includes('STARTTLS'));
    const second = await c.command('STARTTLS');
    assert.equal(second.code, 503);
    c.close();
  });

  it('throws away plaintext commands pipelined behind STARTTLS', async () => {
    const { c } = await ehlo('Starttls');
    // The STARTTLS injection attack: commands sent in the clear behind STARTTLS must not be
    // executed inside the TLS session. Had they been, the first reply after the handshake would
    // answer the injected MAIL (503 Send hello first) instead of our EHLO.
    c.write('STARTTLS\r\nMAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.test>\r\n');
    assert.equal((await c.reply()).code, 220);
    await c.upgradeTls();
    const first = await c.command('EHLO client.test');
    assert.equal(first.code, 250);
    assert.match(first.lines[0]!, /Hello client\.test/);
    assert.equal((await c.command('MAIL FROM:<good@remote.test>')).code, 250, 'no transaction was open');
    c.close();
  });

  it('requires STARTTLS before MAIL when the connector requires TLS', async () => {
    const { c } = await ehlo('Required');
    const r = await c.command('MAIL FROM:<a@remote.test>');
    assert.equal(r.code, 530);
    assert.equal(r.text, '5.7.0 Must issue a STARTTLS command first');
    await c.startTls();
    await c.command('EHLO client.test');
    assert.equal((await c.command('MAIL FROM:<a@remote.test>')).code, 250);
    c.close();
  });

  it('speaks TLS from the first byte on an implicit-TLS connector and records ESMTPS', async () => {
    const c = await SmtpTestClient.connect(h.port('Implicit'), { tls: true });
    assert.equal((await c.greeting()).code, 220);
    const reply = await c.command('EHLO client.test');
    assert.ok(!reply.lines.includes('STARTTLS'));
    await c.command('MAIL FROM:<a@remote.test>');
    await c.command('RCPT TO:<bob@example.test>');
    await c.command('DATA');
    const id = /queued as (\S+)/.exec((await c.command('x\r\n.')).text)![1]!;
    assert.match(await h.body(id), /with ESMTPS\r\n\t\(version=TLSv1\.[23] cipher=/);
    c.close();
  });

  it('answers STARTTLS with 502 where TLS is off', async () => {
    const { c, reply } = await ehlo('NoTls');
    assert.ok(!reply.lines.includes('STARTTLS'));
    assert.equal((await c.command('STARTTLS')).code, 502);
    c.close();
  });
});
