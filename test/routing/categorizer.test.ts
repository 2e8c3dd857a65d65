import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigDirectory } from '../../src/directory/config-directory.ts';
import type { ResolvedRecipient } from '../../src/directory/types.ts';
import type { NextHop } from '../../src/queue/types.ts';
import type { AcceptedRecipient } from '../../src/receive/types.ts';
import { categorize } from '../../src/routing/categorizer.ts';
import type { Router } from '../../src/routing/router.ts';

/** The real directory resolves at RCPT, as the session does; categorize() runs at end of data. */
const directory = new ConfigDirectory({
  acceptedDomains: [{ name: 'example.test', type: 'authoritative', default: true }],
  mailboxes: [
    { address: 'alice@example.test', aliases: ['ali@example.test'] },
    { address: 'bob@example.test', aliases: [] },
    { address: 'carol@example.test', aliases: [] },
  ],
  aliases: [{ address: 'postmaster@example.test', target: 'alice@example.test' }],
  groups: [
    { address: 'team@example.test', members: ['alice@example.test', 'bob@example.test'] },
    { address: 'all@example.test', members: ['team@example.test', 'carol@example.test', 'x@outside.test'] },
  ],
});

/** What the session keeps for `RCPT TO:<address>` (with its ORCPT and NOTIFY, if given). */
function accepted(address: string, dsn: Pick<AcceptedRecipient, 'orcpt' | 'notify'> = {}): AcceptedRecipient {
  const resolution = directory.resolve(address);
  assert.equal(resolution.kind, 'internal', `${address} resolves`);
  return { address, resolvesTo: resolution.kind === 'internal' ? resolution.recipients : [], ...dsn };
}

/** A router that records what it was asked: mailbox hops for local recipients, unreachable otherwise. */
function recordingRouter(): Router & { asked: Array<[string, number]> } {
  const asked: Array<[string, number]> = [];
  return {
    asked,
    route(recipient: ResolvedRecipient, messageSize: number): NextHop {
      asked.push([recipient.address, messageSize]);
      return recipient.local
        ? { type: 'mailbox', mailbox: recipient.address }
        : { type: 'unreachable', domain: recipient.address.slice(recipient.address.indexOf('@') + 1) };
    },
  };
}

const mailbox = (address: string) => ({ type: 'mailbox', mailbox: address }) as const;

describe('categorize(): accepted recipients become queue recipients', () => {
  it('delivers an alias to its primary address and keeps the alias as ORCPT', () => {
    const router = recordingRouter();
    assert.deepEqual(categorize([accepted('postmaster@example.test')], router, 1234), [
      {
        address: 'alice@example.test',
        nextHop: mailbox('alice@example.test'),
        orcpt: 'rfc822;postmaster@example.test',
      },
    ]);
    assert.deepEqual(categorize([accepted('ali@example.test')], router, 1234), [
      {
        address: 'alice@example.test',
        nextHop: mailbox('alice@example.test'),
        orcpt: 'rfc822;ali@example.test',
      },
    ]);
    assert.deepEqual(router.asked, [
      ['alice@example.test', 1234],
      ['alice@example.test', 1234],
    ]);
  });

  it('gives a mailbox addressed directly no ORCPT of its own', () => {
    assert.deepEqual(categorize([accepted('bob@example.test')], recordingRouter(), 10), [
      { address: 'bob@example.test', nextHop: mailbox('bob@example.test') },
    ]);
  });

  it("keeps the client's own ORCPT as it was given, rewritten or not, with its NOTIFY", () => {
    const given = { orcpt: 'rfc822;Original+Tag@Upstream.test', notify: ['SUCCESS', 'FAILURE'] as const };
    assert.deepEqual(
      categorize(
        [accepted('postmaster@example.test', given), accepted('bob@example.test', given)],
        recordingRouter(),
        10,
      ),
      [
        { address: 'alice@example.test', nextHop: mailbox('alice@example.test'), ...given },
        { address: 'bob@example.test', nextHop: mailbox('bob@example.test'), ...given },
      ],
    );
  });

  it('expands nested groups into every member, each routed, with the group as ORCPT', () => {
    const router = recordingRouter();
    assert.deepEqual(categorize([accepted('all@example.test')], router, 99), [
      {
        address: 'alice@example.test',
        nextHop: mailbox('alice@example.test'),
        orcpt: 'rfc822;all@example.test',
      },
      { address: 'bob@example.test', nextHop: mailbox('bob@example.test'), orcpt: 'rfc822;all@example.test' },
      {
        address: 'carol@example.test',
        nextHop: mailbox('carol@example.test'),
        orcpt: 'rfc822;all@example.test',
      },
      {
        address: 'x@outside.test',
        nextHop: { type: 'unreachable', domain: 'outside.test' },
        orcpt: 'rfc822;all@example.test',
      },
    ]);
    assert.deepEqual(
      router.asked.map(([address]) => address),
      ['alice@example.test', 'bob@example.test', 'carol@example.test', 'x@outside.test'],
    );
  });

  it('keeps a mailbox reached twice (directly, by alias and through groups) once, as first reached', () => {
    const router = recordingRouter();
    const out = categorize(
      [
        accepted('bob@example.test'),
        accepted('team@example.test'),
        accepted('postmaster@example.test'),
        accepted('all@example.test'),
        accepted('bob@example.test'),
      ],
      router,
      10,
    );
    assert.deepEqual(out, [
      { address: 'bob@example.test', nextHop: mailbox('bob@example.test') },
      {
        address: 'alice@example.test',
        nextHop: mailbox('alice@example.test'),
        orcpt: 'rfc822;team@example.test',
      },
      {
        address: 'carol@example.test',
        nextHop: mailbox('carol@example.test'),
        orcpt: 'rfc822;all@example.test',
      },
      {
        address: 'x@outside.test',
        nextHop: { type: 'unreachable', domain: 'outside.test' },
        orcpt: 'rfc822;all@example.test',
      },
    ]);
    assert.equal(router.asked.length, 4, 'each final address is routed once');
  });
});
