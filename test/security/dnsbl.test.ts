import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { dnsblQueryName } from '../../src/agents/connection/dnsbl.ts';
import { problems } from '../config/config-problems.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { newMessages, TEST_PASSWORD, waitForMessages } from '../helpers/node-fixture.ts';
import { connect, data, message, queued, ready, startSecuredNode } from './security-fixture.ts';

/**
 * DNS block lists, asked through the node's resolver (here a real DNS server on loopback): a
 * listed client is refused at RCPT with 550 5.7.1 and the list's text, except to postmaster;
 * the listing with the lowest priority number names the list; a list that fails or does not
 * answer in time blocks nothing. Clients connect from 127.0.0.1: the name asked is
 * 1.0.0.127.<zone>.
 */

const REVERSED = '1.0.0.127';
const AGENT_TIMEOUT_MS = 400;

function providers() {
  return [
    // Listed in reverse priority order on purpose: priority decides, not position.
    { zone: 'any.test', priority: 30, rejectText: '{zone} lists {ip}' },
    { zone: 'mask.test', priority: 20, match: [{ bitmask: 2 }], rejectText: '{zone} lists {ip}' },
    {
      zone: 'exact.test',
      priority: 10,
      match: [{ exact: '127.0.0.2' }],
      rejectText: 'Blocked by {zone}: {reason}',
    },
  ];
}

describe('DNS block lists', () => {
  let dns: TestDnsServer;
  let node: Awaited<ReturnType<typeof startSecuredNode>>;
  before(async () => {
    dns = await startDnsServer({});
    node = await startSecuredNode({
      // The tests change the lists' zone between them: no DNS cache, so each sees its own zone.
      dns: { servers: [dns.server], timeout: '2s', tries: 1, cacheTime: 0 },
      agents: { dnsbl: { providers: providers(), timeout: AGENT_TIMEOUT_MS } },
    });
  });
  after(async () => {
    await node.cleanup();
    await dns.close();
  });

  /** MAIL, then RCPT to bob: the reply to the RCPT. */
  async function rcptToBob() {
    const client = await ready(node.port('Default'));
    assert.equal((await client.command('MAIL FROM:<someone@elsewhere.test>')).code, 250);
    const started = Date.now();
    const rcpt = await client.command('RCPT TO:<bob@example.test>');
    return { client, rcpt, ms: Date.now() - started };
  }

  it('refuses every RCPT from a listed client with 550 5.7.1 and the list text, but lets postmaster through', async () => {
    dns.set({
      [`${REVERSED}.exact.test`]: { A: ['127.0.0.2'], TXT: ['See https://exact.test/q?127.0.0.1'] },
    });
    const { client, rcpt } = await rcptToBob();
    assert.equal(rcpt.code, 550);
    assert.equal(rcpt.text, '5.7.1 Blocked by exact.test: See https://exact.test/q?127.0.0.1');
    assert.equal((await client.command('RCPT TO:<postmaster@example.test>')).code, 250);
    assert.equal((await data(client, message('please unlist me'))).code, 250);
    client.close();
    // postmaster is an alias of alice: the one message is hers, and bob has nothing.
    assert.equal((await waitForMessages(node.mailbox('alice@example.test'), 1)).length, 1);
    assert.deepEqual(await newMessages(node.mailbox('bob@example.test')), []);
    assert.ok(dns.queries.some((q) => q.name === `${REVERSED}.exact.test` && q.type === 'A'));
  });

  it('refuses DATA for lack of recipients when only listed recipients were given: nothing is queued', async () => {
    dns.set({ [`${REVERSED}.any.test`]: { A: ['127.0.0.9'] } });
    const before = new Set((await node.node.store.listMessages()).map((m) => m.id));
    const { client, rcpt } = await rcptToBob();
    assert.equal(rcpt.code, 550);
    assert.equal(rcpt.text, '5.7.1 any.test lists 127.0.0.1');
    assert.equal((await client.command('DATA')).code, 554);
    client.close();
    const added = (await node.node.store.listMessages()).filter((m) => !before.has(m.id));
    assert.deepEqual(added, []);
  });

  it('names the list with the lowest priority number when several list the client', async () => {
    dns.set({
      [`${REVERSED}.any.test`]: { A: ['127.0.0.2'] },
      [`${REVERSED}.mask.test`]: { A: ['127.0.0.2'] },
      [`${REVERSED}.exact.test`]: { A: ['127.0.0.2'] },
    });
    const { client, rcpt } = await rcptToBob();
    assert.equal(rcpt.code, 550);
    assert.match(rcpt.text, /^5\.7\.1 Blocked by exact\.test:$/);
    client.close();
  });

  it('takes a bitmask list as listing only when the bit is set, and an exact list only on its address', async () => {
    dns.set({
      [`${REVERSED}.exact.test`]: { A: ['127.0.0.3'] },
      [`${REVERSED}.mask.test`]: { A: ['127.0.0.4'] },
    });
    const clear = await rcptToBob();
    assert.equal(clear.rcpt.code, 250, 'neither 127.0.0.3 (exact 127.0.0.2) nor 127.0.0.4 (bit 2) lists');
    clear.client.close();
    dns.set({ [`${REVERSED}.mask.test`]: { A: ['127.0.0.6'] } });
    const listed = await rcptToBob();
    assert.equal(listed.rcpt.code, 550);
    assert.equal(listed.rcpt.text, '5.7.1 mask.test lists 127.0.0.1');
    listed.client.close();
  });

  it('does not take an answer outside 127.0.0.0/8 as a listing (a wildcard or hijacked zone)', async () => {
    dns.set({ [`${REVERSED}.any.test`]: { A: ['192.0.2.10'] } });
    const { client, rcpt } = await rcptToBob();
    assert.equal(rcpt.code, 250);
    client.close();
  });

  it('fails open when the lists answer SERVFAIL: the message is accepted and delivered', async () => {
    dns.set({
      [`${REVERSED}.exact.test`]: { rcode: 'SERVFAIL' },
      [`${REVERSED}.mask.test`]: { rcode: 'SERVFAIL' },
      [`${REVERSED}.any.test`]: { rcode: 'SERVFAIL' },
    });
    const before = (await newMessages(node.mailbox('bob@example.test'))).length;
    const { client, rcpt } = await rcptToBob();
    assert.equal(rcpt.code, 250);
    assert.equal((await data(client, message('servfail'))).code, 250);
    client.close();
    assert.equal((await waitForMessages(node.mailbox('bob@example.test'), before + 1)).length, before + 1);
  });

  it('fails open when a list does not answer, within the agent timeout', async () => {
    dns.set({
      [`${REVERSED}.exact.test`]: { timeout: true },
      [`${REVERSED}.mask.test`]: { timeout: true },
      [`${REVERSED}.any.test`]: { timeout: true },
    });
    const { client, rcpt, ms } = await rcptToBob();
    assert.equal(rcpt.code, 250);
    assert.ok(ms < AGENT_TIMEOUT_MS + 1500, `RCPT waited ${ms} ms for a silent list`);
    client.close();
  });

  it('does not check an authenticated session', async () => {
    dns.set({ [`${REVERSED}.exact.test`]: { A: ['127.0.0.2'] } });
    const client = await ready(node.port('Client'));
    const auth = Buffer.from(`\0alice@example.test\0${TEST_PASSWORD}`).toString('base64');
    assert.equal((await client.command(`AUTH PLAIN ${auth}`)).code, 235);
    assert.equal((await client.command('MAIL FROM:<alice@example.test>')).code, 250);
    assert.equal((await client.command('RCPT TO:<bob@example.test>')).code, 250);
    client.close();
  });
});

describe('DNS block lists at connect', () => {
  it('refuses a listed client with 554 5.7.1 as its greeting when rejectAt is connect', async () => {
    const dns = await startDnsServer({ [`${REVERSED}.bl.test`]: { A: ['127.0.0.2'] } });
    const node = await startSecuredNode({
      dns: { servers: [dns.server], timeout: '2s', tries: 1, cacheTime: 0 },
      agents: { dnsbl: { providers: [{ zone: 'bl.test' }], rejectAt: 'connect' } },
    });
    try {
      const { client, greeting } = await connect(node.port('Default'));
      assert.equal(greeting.code, 554);
      assert.equal(
        greeting.text,
        '5.7.1 Recipient not authorized, your IP 127.0.0.1 has been found on the block list bl.test',
      );
      await client.closed();
      assert.equal(await queued(node), 0);
    } finally {
      await node.cleanup();
      await dns.close();
    }
  });
});

async function ipv6Loopback(): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(0, '::1', () => server.close(() => resolve(true)));
  });
}

describe('DNS block lists for IPv6 clients', () => {
  it('asks the reversed-nibble name and refuses a listed IPv6 client', async (t) => {
    if (!(await ipv6Loopback())) return t.skip('no IPv6 loopback on this machine');
    const name = dnsblQueryName('::1', 'bl.test')!;
    assert.equal(name, `1${'.0'.repeat(31)}.bl.test`);
    assert.equal(
      dnsblQueryName('2001:db8::567:89ab', 'bl.test'),
      'b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test',
    );
    const dns = await startDnsServer({ [name]: { A: ['127.0.0.2'] } });
    const node = await startSecuredNode(
      {
        dns: { servers: [dns.server], timeout: '2s', tries: 1, cacheTime: 0 },
        agents: { dnsbl: { providers: [{ zone: 'bl.test', rejectText: '{ip} is on {zone}' }] } },
      },
      (config) => {
        config.receiveConnectors[0]!.bindings = ['[::1]:0'];
      },
    );
    try {
      const client = await ready(node.port('Default'), '::1');
      assert.equal((await client.command('MAIL FROM:<someone@elsewhere.test>')).code, 250);
      const rcpt = await client.command('RCPT TO:<bob@example.test>');
      assert.equal(rcpt.code, 550);
      assert.equal(rcpt.text, '5.7.1 ::1 is on bl.test');
      client.close();
      assert.ok(dns.queries.some((q) => q.name === name && q.type === 'A'));
    } finally {
      await node.cleanup();
      await dns.close();
    }
  });
});

describe('DNS block list configuration', () => {
  it('refuses a zone listed twice and a bitmask outside 1-255, at their lines', () => {
    const text = `acceptedDomains:
  - name: example.test
mailboxes:
  - address: alice@example.test
agents:
  dnsbl:
    providers:
      - zone: bl.test
      - zone: BL.test
`;
    assert.deepEqual(problems(text), [
      '9:15 agents.dnsbl.providers[1].zone: block list bl.test is listed twice',
    ]);
    const mask = `acceptedDomains:
  - name: example.test
mailboxes:
  - address: alice@example.test
agents:
  dnsbl:
    providers:
      - zone: bl.test
        match: [{ bitmask: 256 }]
`;
    assert.equal(problems(mask).length, 1);
    assert.match(problems(mask)[0]!, /^9:\d+ agents\.dnsbl\.providers\[0\]\.match\[0\]/);
  });
});
