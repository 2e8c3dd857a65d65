import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { headerFirewallAgent } from '../../src/agents/header-firewall.ts';
import { waitForMessages } from '../helpers/node-fixture.ts';
import { connector, startReceiveHarness, withoutTrace } from '../helpers/receive-fakes.ts';
import { data, ready, startSecuredNode } from './security-fixture.ts';

/**
 * The header firewall (always on): from a session without acceptRoutingHeaders, Ferrymail's own
 * trust headers (X-Ferrymail-*) and Authentication-Results claiming our authserv-id (the node's
 * FQDN, here mx.example.test) are forged, and are taken out of the byte stream before it is
 * stored. Everything else, the body included, is stored byte for byte.
 */

const FORGED = [
  'X-Ferrymail-Trusted: yes',
  'Authentication-Results: mx.example.test; spf=pass smtp.mailfrom=example.test',
  'Authentication-Results: (forged) MX.Example.Test.;\r\n\tdkim=pass header.d=example.test',
  'x-ferrymail-spam-score:\r\n -100',
];
const KEPT = [
  'Authentication-Results: other.example.net; spf=fail smtp.mailfrom=example.test',
  'Authentication-Results: mx.example.test.evil.net; spf=pass',
  'From: someone@elsewhere.test',
  'To: alice@example.test',
  'Subject: keep me',
  'X-Ferrymailish: not ours',
];
const BODY = [
  'X-Ferrymail-Trusted: this is the body, not a header',
  'Authentication-Results: mx.example.test; body text stays',
  '',
  'end.',
].join('\r\n');

/** Forged and honest headers interleaved, then the body. */
function hostileMessage(): string {
  const headers = [
    KEPT[0],
    FORGED[0],
    KEPT[1],
    FORGED[1],
    KEPT[2],
    FORGED[2],
    KEPT[3],
    FORGED[3],
    KEPT[4],
    KEPT[5],
  ];
  return `${headers.join('\r\n')}\r\n\r\n${BODY}`;
}

function headerSection(stored: string, eol = '\r\n'): string {
  return stored.slice(0, stored.indexOf(`${eol}${eol}`) + eol.length);
}

/**
 * What the client sent, as stored: the headers this node wrote itself (Return-Path, Delivered-To,
 * its own Authentication-Results, Received) are above our Received header and are cut off.
 */
function clientPart(stored: string): string {
  return stored.replace(/^[\s\S]*?\nReceived: [^\n]*\n(\t[^\n]*\n)*/, '');
}

/** Maildir stores lines with LF alone. */
function lf(text: string): string {
  return text.replace(/\r\n/g, '\n');
}

describe('header firewall', () => {
  let node: Awaited<ReturnType<typeof startSecuredNode>>;
  before(async () => {
    node = await startSecuredNode({}, (config) => {
      config.receiveConnectors.push({
        name: 'Trusted',
        bindings: ['127.0.0.1:0'],
        permissionGroups: { anonymous: ['submit', 'acceptRoutingHeaders'] },
      } as (typeof config.receiveConnectors)[number]);
    });
  });
  after(() => node.cleanup());

  it('strips forged X-Ferrymail-* and our Authentication-Results from an anonymous session, and keeps the rest', async () => {
    const client = await ready(node.port('Default'));
    assert.equal((await client.command('MAIL FROM:<someone@elsewhere.test>')).code, 250);
    assert.equal((await client.command('RCPT TO:<bob@example.test>')).code, 250);
    assert.equal((await data(client, hostileMessage())).code, 250);
    client.close();
    const [stored] = await waitForMessages(node.mailbox('bob@example.test'), 1);
    const text = clientPart(stored!.toString('latin1'));
    const headers = headerSection(text, '\n');
    assert.doesNotMatch(headers, /^x-ferrymail-/im, 'a forged trust header was stored');
    assert.doesNotMatch(headers, /^Authentication-Results: (\(forged\) )?mx\.example\.test\.?;/im);
    assert.doesNotMatch(headers, /dkim=pass|-100/, 'a continuation line of a removed header was left behind');
    for (const h of KEPT) assert.ok(headers.includes(`${lf(h)}\n`), `lost ${h}`);
    assert.ok(text.endsWith(lf(`\r\n\r\n${BODY}\r\n`)), 'the body was changed');
  });

  it('keeps them from a session with acceptRoutingHeaders', async () => {
    const client = await ready(node.port('Trusted'));
    assert.equal((await client.command('MAIL FROM:<someone@elsewhere.test>')).code, 250);
    assert.equal((await client.command('RCPT TO:<alice@example.test>')).code, 250);
    assert.equal((await data(client, hostileMessage())).code, 250);
    client.close();
    const [stored] = await waitForMessages(node.mailbox('alice@example.test'), 1);
    const headers = headerSection(clientPart(stored!.toString('latin1')), '\n');
    for (const h of [...FORGED, ...KEPT]) assert.ok(headers.includes(`${lf(h)}\n`), `lost ${h}`);
  });
});

describe('header firewall on the byte stream', () => {
  it('removes headers split across many small writes and BDAT chunks', async () => {
    const harness = await startReceiveHarness([connector()], {
      agents: [headerFirewallAgent({ authservIds: ['mx.example.test'] })],
    });
    try {
      const client = await ready(harness.port());
      assert.equal((await client.command('MAIL FROM:<someone@elsewhere.test>')).code, 250);
      assert.equal((await client.command('RCPT TO:<alice@example.test>')).code, 250);
      const content = Buffer.from(`${hostileMessage()}\r\n`, 'latin1');
      // Chunks of 7 bytes: field names, line ends and the blank line all straddle chunk borders.
      for (let at = 0; at < content.length; at += 7) {
        const chunk = content.subarray(at, at + 7);
        const last = at + 7 >= content.length;
        client.write(Buffer.concat([Buffer.from(`BDAT ${chunk.length}${last ? ' LAST' : ''}\r\n`), chunk]));
        const r = await client.reply();
        assert.equal(r.code, 250, r.text);
      }
      client.close();
      const [submitted] = await harness.messages();
      const stored = withoutTrace(await harness.body(submitted!.id));
      const headers = headerSection(stored);
      assert.doesNotMatch(headers, /^x-ferrymail-/im);
      assert.doesNotMatch(headers, /mx\.example\.test\.?;/i);
      for (const h of KEPT) assert.ok(headers.includes(`${h}\r\n`), `lost ${h}`);
      assert.ok(stored.endsWith(`\r\n\r\n${BODY}\r\n`));
    } finally {
      await harness.close();
    }
  });

  it('writes the body to storage while it is still arriving (nothing is buffered past the headers)', async () => {
    const harness = await startReceiveHarness([connector()], {
      agents: [headerFirewallAgent({ authservIds: ['mx.example.test'] })],
    });
    try {
      const client = await ready(harness.port());
      assert.equal((await client.command('MAIL FROM:<someone@elsewhere.test>')).code, 250);
      assert.equal((await client.command('RCPT TO:<alice@example.test>')).code, 250);
      assert.equal((await client.command('DATA')).code, 354);
      const line = `${'x'.repeat(998)}\r\n`;
      client.write(`X-Ferrymail-Trusted: yes\r\nSubject: big\r\n\r\n${line.repeat(2048)}`);
      // 2 MB sent, no end of data yet: the body file must already hold them.
      const deadline = Date.now() + 10_000;
      let size = 0;
      while (Date.now() < deadline) {
        const temp = (await readdir(harness.sink.dir)).find((n) => n.endsWith('.tmp'));
        size = temp ? (await stat(join(harness.sink.dir, temp))).size : 0;
        if (size >= 2048 * 1000) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(size >= 2048 * 1000, `only ${size} bytes on disk before the end of data`);
      client.write('.\r\n');
      assert.equal((await client.reply()).code, 250);
      client.close();
      const [submitted] = await harness.messages();
      const stored = withoutTrace(await harness.body(submitted!.id));
      assert.ok(stored.startsWith('Subject: big\r\n\r\n'));
      assert.equal(stored.length, 'Subject: big\r\n\r\n'.length + line.length * 2048);
    } finally {
      await harness.close();
    }
  });
});
