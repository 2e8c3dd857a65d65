import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { problems } from '../config/config-problems.ts';
import { newMessages, waitForMessages } from '../helpers/node-fixture.ts';
import { connect, data, message, queued, ready, startSecuredNode } from './security-fixture.ts';

/**
 * Connection filtering by IP: a blocked client gets 554 5.7.1 as its greeting and is
 * disconnected, before it can send a byte of mail; an allow-list entry beats a block-list entry;
 * an entry stops applying at its `expires` instant. Every test client connects from 127.0.0.1.
 */
describe('IP allow and block lists', () => {
  describe('a blocked client', () => {
    let node: Awaited<ReturnType<typeof startSecuredNode>>;
    before(async () => {
      node = await startSecuredNode({ agents: { ipBlockList: ['127.0.0.0/8'] } });
    });
    after(() => node.cleanup());

    it('is refused with 554 5.7.1 at connect and disconnected, and nothing it sends is stored', async () => {
      const { client, greeting } = await connect(node.port('Default'));
      assert.equal(greeting.code, 554);
      assert.match(greeting.text, /^5\.7\.1 /);
      // Whatever it tries next goes nowhere: the server has closed the connection.
      client.write(
        `EHLO x\r\nMAIL FROM:<a@elsewhere.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n${message()}\r\n.\r\n`,
      );
      await client.closed();
      assert.equal(await queued(node), 0);
      assert.deepEqual(await newMessages(node.mailbox('alice@example.test')), []);
    });

    it('is refused on every connector, submission included', async () => {
      const { client, greeting } = await connect(node.port('Client'));
      assert.equal(greeting.code, 554);
      await client.closed();
    });
  });

  it('lets an allow-listed client in even when a block-list entry also covers it (allow beats block)', async () => {
    const node = await startSecuredNode({
      agents: { ipAllowList: ['127.0.0.1'], ipBlockList: ['127.0.0.0/8'] },
    });
    try {
      const client = await ready(node.port('Default'));
      assert.equal((await client.command('MAIL FROM:<someone@elsewhere.test>')).code, 250);
      assert.equal((await client.command('RCPT TO:<alice@example.test>')).code, 250);
      assert.equal((await data(client, message())).code, 250);
      client.close();
      assert.equal((await waitForMessages(node.mailbox('alice@example.test'), 1)).length, 1);
    } finally {
      await node.cleanup();
    }
  });

  it('ignores a block-list entry whose expires instant has passed, and honours one still in force', async () => {
    const node = await startSecuredNode({
      agents: {
        ipBlockList: [
          { range: '127.0.0.1', expires: '2020-01-01T00:00:00Z' },
          { range: '127.0.0.2/32', expires: '2999-01-01T00:00:00Z' },
        ],
      },
    });
    try {
      const { client, greeting } = await connect(node.port('Default'));
      assert.equal(greeting.code, 220, 'an expired entry must not block');
      client.close();
    } finally {
      await node.cleanup();
    }
    const blocking = await startSecuredNode({
      agents: { ipBlockList: [{ range: '127.0.0.0/24', expires: '2999-01-01T00:00:00Z' }] },
    });
    try {
      const { client, greeting } = await connect(blocking.port('Default'));
      assert.equal(greeting.code, 554, 'an entry that has not expired yet must block');
      await client.closed();
    } finally {
      await blocking.cleanup();
    }
  });

  it('refuses a config with a bad CIDR or a bad expiry, at its file:line and field', () => {
    const text = `acceptedDomains:
  - name: example.test
mailboxes:
  - address: alice@example.test
agents:
  ipBlockList:
    - 192.0.2.0/33
    - range: not-an-ip
      expires: 2027-01-01T00:00:00Z
  ipAllowList:
    - range: 192.0.2.1
      expires: next tuesday
`;
    assert.deepEqual(problems(text), [
      '12:16 agents.ipAllowList[0].expires: expected a date-time such as 2027-01-31T00:00:00Z',
    ]);
    const cidrs = `acceptedDomains:
  - name: example.test
mailboxes:
  - address: alice@example.test
agents:
  ipBlockList:
    - 192.0.2.0/33
    - range: not-an-ip
      expires: 2027-01-01T00:00:00Z
`;
    assert.deepEqual(problems(cidrs), [
      '7:7 agents.ipBlockList[0]: expected an IP address, a CIDR block or a range first-last',
      '8:7 agents.ipBlockList[1]: expected an IP address, a CIDR block or a range first-last',
    ]);
  });
});
