import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TEST_PASSWORD, waitForMessages } from '../helpers/node-fixture.ts';
import { data, message, queued, ready, startSecuredNode } from './security-fixture.ts';

/**
 * The sender filter refuses blocked reverse paths and domains at MAIL with 554 5.1.0, so no
 * recipient and no content of theirs is taken; `*.domain` covers the domain and its subdomains.
 * The null sender carries NDRs and is never refused unless blockNullSender says so.
 */
describe('sender filter', () => {
  let node: Awaited<ReturnType<typeof startSecuredNode>>;
  before(async () => {
    node = await startSecuredNode(
      {
        agents: {
          senderFilter: {
            blockedSenders: ['Spammer@Bulk.test'],
            blockedDomains: ['junk.test', '*.spam.test'],
          },
        },
      },
      (config) => {
        // Submitters here may send as anyone, so only the sender filter could refuse them.
        config.receiveConnectors[1]!.permissionGroups = {
          authenticatedUsers: ['submit', 'relay', 'acceptAnySender'],
        };
      },
    );
  });
  after(() => node.cleanup());

  const refused = [
    ['a blocked address (case-insensitively)', 'spammer@BULK.test'],
    ['an address in a blocked domain', 'anyone@junk.test'],
    ['an address in a subdomain of a *.domain entry', 'x@mail.eu.spam.test'],
    ['an address in the domain of a *.domain entry itself', 'x@spam.test'],
  ];
  for (const [what, sender] of refused) {
    it(`refuses ${what} at MAIL with 554 5.1.0 and stores nothing`, async () => {
      const client = await ready(node.port('Default'));
      const mail = await client.command(`MAIL FROM:<${sender}>`);
      assert.equal(mail.code, 554);
      assert.equal(mail.text, '5.1.0 Sender denied');
      // No transaction was opened: RCPT and DATA are out of sequence.
      assert.equal((await client.command('RCPT TO:<alice@example.test>')).code, 503);
      assert.equal((await client.command('DATA')).code, 503);
      assert.equal(await queued(node), 0);
      client.close();
    });
  }

  it('accepts a sender whose domain only ends like a blocked one (notjunk.test) and the null sender <>', async () => {
    const client = await ready(node.port('Default'));
    assert.equal((await client.command('MAIL FROM:<bob@notjunk.test>')).code, 250);
    assert.equal((await client.command('RCPT TO:<alice@example.test>')).code, 250);
    assert.equal((await data(client, message('from notjunk'))).code, 250);
    assert.equal((await client.command('MAIL FROM:<>')).code, 250);
    assert.equal((await client.command('RCPT TO:<alice@example.test>')).code, 250);
    assert.equal((await data(client, message('an NDR'))).code, 250);
    client.close();
    assert.equal((await waitForMessages(node.mailbox('alice@example.test'), 2)).length, 2);
  });

  it('does not filter an authenticated session', async () => {
    const client = await ready(node.port('Client'));
    const auth = Buffer.from(`\0alice@example.test\0${TEST_PASSWORD}`).toString('base64');
    assert.equal((await client.command(`AUTH PLAIN ${auth}`)).code, 235);
    assert.equal((await client.command('MAIL FROM:<anyone@junk.test>')).code, 250);
    client.close();
  });

  it('refuses the null sender only when blockNullSender is set', async () => {
    const strict = await startSecuredNode({ agents: { senderFilter: { blockNullSender: true } } });
    try {
      const client = await ready(strict.port('Default'));
      const mail = await client.command('MAIL FROM:<>');
      assert.equal(mail.code, 554);
      assert.equal(mail.text, '5.1.0 Sender denied');
      assert.equal((await client.command('MAIL FROM:<someone@elsewhere.test>')).code, 250);
      client.close();
    } finally {
      await strict.cleanup();
    }
  });
});
