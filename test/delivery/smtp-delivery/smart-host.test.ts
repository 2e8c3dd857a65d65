import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { startDnsServer } from '../../helpers/dns-server.ts';
import {
  freePort,
  removeDir,
  startTestNode,
  type TestNode,
  waitForMessages,
} from '../../helpers/node-fixture.ts';
import { SmtpTestClient } from '../../helpers/smtp-client.ts';
import { SmtpSink } from '../../helpers/smtp-sink.ts';
import { testPki } from '../smtp-client/fixtures.ts';
import { attempted, outboundConfig, submit, waitForQueued } from './outbound-fixture.ts';

/**
 * Mail for other domains leaves through a smart-host send connector: the envelope and body
 * arrive intact, each recipient gets its own outcome, a dead smart host fails over to the next,
 * connections are reused, and the connector's TLS and AUTH policy holds.
 */
describe('delivery through a smart host', () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  async function nodeWith(sendConnectors: unknown[], extra: Record<string, unknown> = {}): Promise<TestNode> {
    const { dir, config } = await outboundConfig(sendConnectors, extra);
    const t = await startTestNode({ dir, config });
    cleanups.push(async () => {
      await t.stop();
      await removeDir(dir);
    });
    return t;
  }

  async function sink(options: Parameters<typeof SmtpSink.start>[0] = {}): Promise<SmtpSink> {
    const s = await SmtpSink.start(options);
    cleanups.push(() => s.close());
    return s;
  }

  const smartHost = (hosts: string[], more: Record<string, unknown> = {}) => ({
    name: 'SmartHost',
    addressSpaces: ['*'],
    routing: { type: 'smartHost', hosts },
    ...more,
  });

  it('relays the envelope, its DSN parameters and the body byte for byte', async () => {
    const s = await sink();
    const t = await nodeWith([smartHost([`127.0.0.1:${s.port}`])]);
    const c = await SmtpTestClient.connect(t.port('Relay'));
    try {
      await c.greeting();
      await c.command('EHLO client.example.test');
      assert.equal((await c.command('MAIL FROM:<app@example.test> RET=HDRS ENVID=env+2B1')).code, 250);
      assert.equal(
        (await c.command('RCPT TO:<x@remote.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;x@remote.test')).code,
        250,
      );
      assert.equal((await c.command('DATA')).code, 354);
      const reply = await c.command(
        'From: <app@example.test>\r\nSubject: hi\r\n\r\n..leading dot\r\nend\r\n.',
      );
      assert.equal(reply.code, 250);
    } finally {
      c.close();
    }
    await s.waitFor(() => s.transactions.length === 1);
    const tx = s.transactions[0]!;
    assert.equal(tx.sender, 'app@example.test');
    assert.equal(tx.mailParams.RET, 'HDRS');
    assert.equal(tx.mailParams.ENVID, 'env+2B1', 'ENVID passed on, still xtext-encoded');
    assert.deepEqual(tx.accepted, ['x@remote.test']);
    assert.equal(tx.recipients[0]!.params.NOTIFY, 'FAILURE,DELAY');
    assert.equal(tx.recipients[0]!.params.ORCPT, 'rfc822;x@remote.test');
    const body = tx.body.toString('latin1');
    // Our trace headers lead: the Authentication-Results of this hop, then our Received.
    assert.match(
      body,
      /^(Authentication-Results: mx\.example\.test;[\s\S]*?\r\n(?![ \t]))?Received: from client\.example\.test/,
    );
    assert.match(
      body,
      /\r\nSubject: hi\r\n\r\n\.leading dot\r\nend\r\n$/,
      'the body, dot included, arrives as sent',
    );
  });

  it('records 250, 450 and 550 from one transaction each for its own recipient', async () => {
    const s = await sink({
      rcptReply: (a) =>
        a.startsWith('busy')
          ? '450 4.2.1 Mailbox busy'
          : a.startsWith('gone')
            ? '550 5.1.1 No such user'
            : '250 2.1.5 Ok',
    });
    const t = await nodeWith([smartHost([`127.0.0.1:${s.port}`])]);
    const started = Date.now();
    const id = await submit(t.port('Relay'), 'app@example.test', [
      'ok@remote.test',
      'busy@remote.test',
      'gone@remote.test',
    ]);
    const message = await waitForQueued((m) => t.node.store.getMessage(m), id, attempted);
    const [ok, busy, gone] = message.recipients;
    assert.equal(ok!.status, 'delivered');
    assert.match(ok!.lastResponse ?? '', /^250 /);
    assert.equal(busy!.status, 'pending', 'a 4xx defers');
    assert.match(busy!.lastResponse ?? '', /^450 4\.2\.1 Mailbox busy/);
    const wait = busy!.nextAttemptAt - started;
    assert.ok(
      wait >= 55_000 && wait <= 75_000,
      `first retry after about a minute (glitch retry), was ${wait} ms`,
    );
    assert.equal(gone!.status, 'failed', 'a 5xx fails the recipient');
    assert.match(gone!.lastResponse ?? '', /^550 5\.1\.1 No such user/);
    assert.equal(s.transactions.length, 1, 'one transaction for the three');
  });

  it('puts recipients of several domains through the smart host in one transaction', async () => {
    const s = await sink();
    const t = await nodeWith([smartHost([`127.0.0.1:${s.port}`])]);
    await submit(t.port('Relay'), 'app@example.test', ['a@one.test', 'b@two.test', 'c@three.test']);
    await s.waitFor(() => s.transactions.length >= 1);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(s.transactions.length, 1);
    assert.deepEqual([...s.transactions[0]!.accepted].sort(), ['a@one.test', 'b@two.test', 'c@three.test']);
  });

  it('fails over to the next smart host when the first refuses connections', async () => {
    const s = await sink();
    const dead = await freePort();
    const t = await nodeWith([smartHost([`127.0.0.1:${dead}`, `127.0.0.1:${s.port}`])]);
    await submit(t.port('Relay'), 'app@example.test', ['x@remote.test']);
    await s.waitFor(() => s.transactions.length === 1);
    assert.deepEqual(s.transactions[0]!.accepted, ['x@remote.test']);
  });

  it('defers with the reason when no smart host can be reached, and keeps the message', async () => {
    const dead = await freePort();
    const t = await nodeWith([smartHost([`127.0.0.1:${dead}`])]);
    const id = await submit(t.port('Relay'), 'app@example.test', ['x@remote.test']);
    const message = await waitForQueued((m) => t.node.store.getMessage(m), id, attempted);
    const r = message.recipients[0]!;
    assert.equal(r.status, 'pending');
    assert.equal(r.attempts, 1);
    assert.match(r.lastResponse ?? '', /^4\d\d 4\.4\.1 .*ECONNREFUSED/);
  });

  it('carries several messages to the same destination on one connection', async () => {
    const s = await sink();
    const t = await nodeWith([smartHost([`127.0.0.1:${s.port}`])]);
    for (let i = 0; i < 4; i++) {
      await submit(t.port('Relay'), 'app@example.test', [`x${i}@remote.test`]);
      await s.waitFor(() => s.transactions.length === i + 1);
    }
    assert.equal(s.connections.length, 1, 'the idle connection was reused for each next message');
  });

  it('does not deliver without TLS when the connector requires it (4.7.4, retried)', async () => {
    const s = await sink();
    const t = await nodeWith([smartHost([`127.0.0.1:${s.port}`], { tls: { mode: 'required' } })]);
    const id = await submit(t.port('Relay'), 'app@example.test', ['x@remote.test']);
    const message = await waitForQueued((m) => t.node.store.getMessage(m), id, attempted);
    assert.equal(message.recipients[0]!.status, 'pending');
    assert.match(message.recipients[0]!.lastResponse ?? '', /4\.7\.4/);
    assert.equal(s.transactions.length, 0);
  });

  it('authenticates with the password from its file, inside TLS, with a validated certificate', async () => {
    const pki = await testPki();
    const s = await sink({
      hostname: 'mx.example.test',
      tls: pki.leaf,
      auth: { check: (u, p) => u === 'relay-user' && p === 's3cret pass' },
    });
    const { dir, config } = await outboundConfig([]);
    await writeFile(join(dir, 'smarthost.password'), 's3cret pass\n');
    await writeFile(join(dir, 'ca.pem'), pki.ca);
    config.sendConnectors = [
      {
        name: 'SmartHost',
        addressSpaces: ['*'],
        routing: { type: 'smartHost', hosts: [`mx.example.test:${s.port}`] },
        auth: { mode: 'basicRequireTls', username: 'relay-user', passwordFile: 'smarthost.password' },
        tls: { mode: 'required', validation: 'domain', caFile: 'ca.pem' },
      },
    ];
    // The smart host is named, as its certificate is: its address comes from a DNS server on loopback.
    const dns = await startDnsServer({ 'mx.example.test': { A: ['127.0.0.1'] } });
    cleanups.push(() => dns.close());
    config.dns = { servers: [dns.server], timeout: '1s', tries: 1 };
    const t = await startTestNode({ dir, config });
    cleanups.push(async () => {
      await t.stop();
      await removeDir(dir);
    });
    const id = await submit(t.port('Relay'), 'app@example.test', ['x@remote.test']);
    const waiting = await Promise.race([
      s.waitFor(() => s.transactions.length === 1).then(() => undefined),
      waitForQueued((m) => t.node.store.getMessage(m), id, attempted),
    ]);
    assert.equal(waiting, undefined, `not deferred: ${waiting?.recipients[0]?.lastResponse}`);
    assert.equal(s.transactions[0]!.tls, true);
    assert.equal(s.transactions[0]!.authUser, 'relay-user');
  });

  it("queues a remote sender's NDR like any message: it leaves through the connector from <>", async () => {
    const s = await sink({
      rcptReply: (a) => (a.startsWith('gone') ? '550 5.1.1 No such user' : '250 2.1.5 Ok'),
    });
    const t = await nodeWith([smartHost([`127.0.0.1:${s.port}`])]);
    await submit(t.port('Relay'), 'someone@remote.test', ['gone@far.test']);
    await s.waitFor(() => s.transactions.some((tx) => tx.sender === ''));
    const ndr = s.transactions.find((tx) => tx.sender === '')!;
    assert.deepEqual(ndr.accepted, ['someone@remote.test']);
    const text = ndr.body.toString('latin1');
    assert.match(text, /(^|\r\n)From: .*<postmaster@example\.test>\r\n/);
    assert.match(text, /\r\nContent-Type: multipart\/report; report-type=delivery-status;/i);
    assert.match(text, /\r\nFinal-Recipient: rfc822; ?gone@far\.test\r\n/i);
    assert.match(text, /\r\nAction: failed\r\n/);
    assert.match(text, /\r\nStatus: 5\.1\.1\r\n/);
    assert.match(text, /\r\nDiagnostic-Code: smtp; ?550 5\.1\.1 No such user/i);
  });

  it('relays unknown addresses of an internal relay domain, and every address of an external relay domain', async () => {
    const s = await sink();
    const t = await nodeWith([smartHost([`127.0.0.1:${s.port}`])], {
      acceptedDomains: [
        { name: 'example.test', type: 'authoritative', default: true },
        { name: 'hybrid.test', type: 'internalRelay' },
        { name: 'forwarded.test', type: 'externalRelay' },
      ],
    });
    // From the internet (no relay permission): these are our domains, so they are accepted.
    await submit(t.port('Default'), 'someone@remote.test', ['unknown@hybrid.test', 'anyone@forwarded.test']);
    await s.waitFor(() => s.transactions.length === 1);
    assert.deepEqual([...s.transactions[0]!.accepted].sort(), [
      'anyone@forwarded.test',
      'unknown@hybrid.test',
    ]);
  });

  it('fails an SMTPUTF8 message with 5.6.7 when the smart host cannot take it, and tells the sender', async () => {
    const s = await sink({ extensions: { smtpUtf8: false } });
    const t = await nodeWith([smartHost([`127.0.0.1:${s.port}`])]);
    const c = await SmtpTestClient.connect(t.port('Relay'));
    try {
      await c.greeting();
      await c.command('EHLO client.example.test');
      assert.equal((await c.command('MAIL FROM:<alice@example.test> SMTPUTF8')).code, 250);
      assert.equal((await c.command('RCPT TO:<jörg@remote.test>')).code, 250);
      assert.equal((await c.command('DATA')).code, 354);
      assert.equal((await c.command('From: <alice@example.test>\r\nSubject: grüße\r\n\r\nx\r\n.')).code, 250);
    } finally {
      c.close();
    }
    const [ndr] = await waitForMessages(t.mailbox('alice@example.test'), 1);
    assert.match(ndr!.toString('utf8'), /\nStatus: 5\.6\.7\r?\n/);
    assert.equal(s.transactions.length, 0, 'nothing was sent to a server that cannot take it');
  });

  it('fails a message too big for every connector of its domain with 5.3.4, and tells the sender', async () => {
    const s = await sink();
    const t = await nodeWith([smartHost([`127.0.0.1:${s.port}`], { maxMessageSize: '1KB' })]);
    await submit(
      t.port('Relay'),
      'alice@example.test',
      ['x@remote.test'],
      `Subject: big\r\n\r\n${'x'.repeat(2000)}\r\n`,
    );
    const [ndr] = await waitForMessages(t.mailbox('alice@example.test'), 1);
    const text = ndr!.toString('latin1');
    assert.match(text, /\nStatus: 5\.3\.4\r?\n/);
    assert.match(text, /\nFinal-Recipient: rfc822; ?x@remote\.test\r?\n/i);
    assert.equal(s.transactions.length, 0);
  });
});
