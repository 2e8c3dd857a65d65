import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testPki } from '../delivery/smtp-client/fixtures.ts';
import { attempted, waitForQueued } from '../delivery/smtp-delivery/outbound-fixture.ts';
import {
  demoLikeConfig,
  makeTempDir,
  removeDir,
  startTestNode,
  type TestNode,
  waitForMessages,
} from '../helpers/node-fixture.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';
import { EventLog, observedConfig, send } from './observe-fixture.ts';

/**
 * A message's path shows on the node's bus as Exchange's message tracking events: RECEIVE once
 * it is queued, RESOLVE / EXPAND / REDIRECT for what routing made of its recipients, then
 * DELIVER (mailbox), SEND (smart host), DEFER or FAIL per delivery job, and DSN when a report
 * is queued. Each event carries the fields the stage knows.
 */
describe('message tracking events of the pipeline', () => {
  let t: TestNode;
  let log: EventLog;
  let partner: SmtpSink;
  let broken: SmtpSink;
  let later: SmtpSink;
  let dir: string;

  before(async () => {
    const pki = await testPki();
    partner = await SmtpSink.start({ hostname: 'mx.partner.test', tls: pki.leaf });
    broken = await SmtpSink.start({ rcptReply: () => '550 5.1.1 <x@fail.test>: no such user' });
    later = await SmtpSink.start({ rcptReply: () => '451 4.3.0 try again later' });
    dir = await makeTempDir('ferrymail-observe-');
    const config = observedConfig(await demoLikeConfig(dir), {
      partner: partner.port,
      broken: broken.port,
      later: later.port,
    });
    t = await startTestNode({ dir, config });
    log = new EventLog(t.node.events);
  });
  after(async () => {
    log.unsubscribe();
    await t.stop();
    await Promise.all([partner.close(), broken.close(), later.close()]);
    await removeDir(dir);
  });

  it('a message to a group: RECEIVE with the envelope as given, EXPAND to its members, DELIVER', async () => {
    const id = await send(t.port('Default'), {
      from: 'someone@elsewhere.test',
      to: ['team@example.test'],
      subject: 'For the team',
      messageId: '<team.1@elsewhere.test>',
      helo: 'mail.elsewhere.test',
    });
    const received = await log.track('RECEIVE', id);
    assert.equal(received.source, 'SMTP');
    assert.equal(received.messageId, '<team.1@elsewhere.test>');
    assert.equal(received.clientIp, '127.0.0.1');
    assert.equal(received.clientHostname, 'mail.elsewhere.test');
    assert.equal(received.serverIp, '127.0.0.1');
    assert.equal(received.serverHostname, 'mx.example.test');
    assert.equal(received.connector, 'Default');
    assert.equal(received.sender, 'someone@elsewhere.test');
    assert.deepEqual(received.recipients, ['team@example.test'], 'the recipients as the client gave them');
    assert.deepEqual(received.recipientStatus, ['250 2.0.0 Queued']);
    assert.equal(received.subject, 'For the team');
    assert.equal(received.directionality, 'Incoming');
    const stored = await t.node.store.getMessage(id);
    assert.equal(received.size, stored?.size, 'the size as stored');

    const expanded = await log.track('EXPAND', id);
    assert.equal(expanded.source, 'ROUTING');
    assert.equal(expanded.relatedRecipient, 'team@example.test');
    assert.deepEqual(expanded.recipients, ['alice@example.test', 'bob@example.test']);
    assert.equal(expanded.messageId, '<team.1@elsewhere.test>');

    const delivered = await log.track('DELIVER', id);
    assert.equal(delivered.source, 'MAILBOX');
    assert.deepEqual(delivered.recipients, ['alice@example.test', 'bob@example.test']);
    assert.equal(delivered.recipientStatus.length, 2);
    for (const status of delivered.recipientStatus) assert.match(status, /^250 /);
    assert.equal(delivered.sender, 'someone@elsewhere.test');
    assert.equal(delivered.subject, 'For the team');
    assert.ok(
      log.tracking({ internalId: id }).indexOf(received) <
        log.tracking({ internalId: id }).indexOf(delivered),
    );
    assert.equal(log.tracking({ eventId: 'RESOLVE', internalId: id }).length, 0, 'a group is no alias');
  });

  it('an alias: RESOLVE from the address given to the mailbox', async () => {
    const id = await send(t.port('Default'), {
      from: 'someone@elsewhere.test',
      to: ['postmaster@example.test'],
    });
    const resolved = await log.track('RESOLVE', id);
    assert.equal(resolved.source, 'ROUTING');
    assert.equal(resolved.relatedRecipient, 'postmaster@example.test');
    assert.deepEqual(resolved.recipients, ['alice@example.test']);
    const delivered = await log.track('DELIVER', id);
    assert.deepEqual(delivered.recipients, ['alice@example.test']);
  });

  it('an alias for an address outside: REDIRECT, then SEND through its connector, with the peer', async () => {
    const id = await send(t.port('Default'), { from: 'someone@elsewhere.test', to: ['desk@example.test'] });
    const redirected = await log.track('REDIRECT', id);
    assert.equal(redirected.relatedRecipient, 'desk@example.test');
    assert.deepEqual(redirected.recipients, ['desk@partner.test']);
    const sent = await log.track('SEND', id);
    assert.equal(sent.source, 'SMTP');
    assert.equal(sent.connector, 'Partner');
    assert.deepEqual(sent.recipients, ['desk@partner.test']);
    assert.match(sent.recipientStatus[0]!, /^250 /);
    assert.equal(sent.serverHostname, '127.0.0.1', 'the smart host as configured');
    assert.equal(sent.serverIp, '127.0.0.1');
    const tls = log.protocol('tls').filter((e) => e.direction === 'send');
    assert.deepEqual(
      tls.map((e) => [e.connector, e.outcome, e.protocol]),
      [['Partner', 'established', 'TLSv1.3']],
    );
    const latency = log.protocol('delivery-latency').filter((e) => e.hop === 'smtp');
    assert.equal(latency.length, 1);
    assert.ok(latency[0]!.seconds >= 0 && latency[0]!.seconds < 30, `latency ${latency[0]!.seconds}`);
  });

  it('a remote refusal: FAIL with the reply, then DSN for the report to the sender', async () => {
    const id = await send(t.port('Relay'), { from: 'alice@example.test', to: ['x@fail.test'] });
    const failed = await log.track('FAIL', id);
    assert.equal(failed.source, 'SMTP');
    assert.equal(failed.connector, 'Broken');
    assert.deepEqual(failed.recipients, ['x@fail.test']);
    assert.match(failed.recipientStatus[0]!, /^550 5\.1\.1 /);
    const report = await log.until(
      () => log.tracking({ eventId: 'DSN' }).find((e) => e.reference === id),
      `DSN about ${id}`,
    );
    assert.equal(report.source, 'DSN');
    assert.equal(report.detail, 'failure');
    assert.deepEqual(report.recipients, ['alice@example.test'], 'to the original sender');
    assert.equal(report.sender, '');
    assert.ok(report.internalId && report.internalId !== id, 'the report has its own queue id');
    const events = log.tracking();
    assert.ok(events.indexOf(failed) < events.indexOf(report), 'FAIL comes before DSN');
    const reportDelivered = await log.track('DELIVER', report.internalId);
    assert.deepEqual(reportDelivered.recipients, ['alice@example.test']);
    assert.equal(log.tracking({ eventId: 'RECEIVE', internalId: report.internalId }).length, 0);
  });

  it('a remote 4xx: DEFER with the reply and the next attempt time', async () => {
    const before = Date.now();
    const id = await send(t.port('Relay'), { from: 'alice@example.test', to: ['y@later.test'] });
    const deferred = await log.track('DEFER', id);
    assert.equal(deferred.source, 'QUEUE');
    assert.equal(deferred.connector, 'Later');
    assert.deepEqual(deferred.recipients, ['y@later.test']);
    assert.match(deferred.recipientStatus[0]!, /^451 4\.3\.0 /);
    const next = Date.parse(deferred.detail ?? '');
    assert.ok(next > before, `the next attempt ${deferred.detail} is after the attempt`);
    const stored = await waitForQueued((m) => t.node.store.getMessage(m), id, attempted);
    assert.equal(
      new Date(stored.recipients[0]!.nextAttemptAt).toISOString(),
      deferred.detail,
      'the time the queue will try again',
    );
  });

  it('a listener that throws breaks neither delivery nor the other listeners', async () => {
    const unsubscribe = t.node.events.subscribe(() => {
      throw new Error('a broken observer');
    });
    try {
      const id = await send(t.port('Default'), { from: 'someone@elsewhere.test', to: ['bob@example.test'] });
      await log.track('DELIVER', id);
      const inBob = await waitForMessages(t.mailbox('bob@example.test'), 2);
      assert.ok(
        inBob.some((m) => m.toString('latin1').includes(id)),
        'the message is in the mailbox',
      );
    } finally {
      unsubscribe();
    }
  });
});
