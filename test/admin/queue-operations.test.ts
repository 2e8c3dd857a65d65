import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { submit } from '../delivery/smtp-delivery/outbound-fixture.ts';
import { newMessages, waitForMessages } from '../helpers/node-fixture.ts';
import {
  ADMIN_ACCOUNT,
  ADMIN_PASSWORD,
  type AdminTestNode,
  API_TOKEN,
  eventually,
  startAdminNode,
} from './admin-fixture.ts';

interface QueueSummary {
  name: string;
  deliveryType: string;
  status: string;
  messageCount: number;
  recipientCount: number;
}
interface MessageView {
  id: string;
  sender: string;
  status: string;
  subject?: string;
  queues: string[];
  recipients: Array<{
    address: string;
    status: string;
    attempts: number;
    nextAttemptAt: number;
    lastResponse?: string;
  }>;
}

const bodyWith = (subject: string, from: string) =>
  `From: <${from}>\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}@example.test>\r\n\r\nHello over there.\r\n`;

/**
 * The queue viewer through the API, on real queued mail: a smart host that greets with 421
 * keeps remote messages in the queue, retrying, while the test lists, shows, exports, holds,
 * releases, retries, resubmits and removes them. Every change is an ADMIN event naming who.
 */
describe('admin API: queue operations on queued mail', () => {
  let node: AdminTestNode;
  let queue: string;
  let bobsId: string;
  let alicesId: string;
  let session: string;
  const bobsBody = bodyWith('Quarterly report', 'bob@example.test');

  const message = async (id: string) => {
    const r = await node.api('GET', `/api/v1/messages/${id}`);
    return r.status === 200 ? r.json<MessageView>() : undefined;
  };
  const waitingForRetry = (id: string) =>
    eventually(`message ${id} to wait for its retry`, async () => {
      const m = await message(id);
      return m && m.status === 'Retry' && m.recipients.every((r) => r.attempts > 0) ? m : undefined;
    });

  before(async () => {
    node = await startAdminNode();
    bobsId = await submit(node.t.port('Relay'), 'bob@example.test', ['x@remote.test'], bobsBody);
    alicesId = await submit(
      node.t.port('Relay'),
      'alice@example.test',
      ['y@remote.test'],
      bodyWith('Invoice', 'alice@example.test'),
    );
    await waitingForRetry(bobsId);
    await waitingForRetry(alicesId);
    const login = await node.api('POST', '/api/v1/login', {
      token: null,
      body: { username: ADMIN_ACCOUNT, password: ADMIN_PASSWORD },
    });
    session = login.json<{ token: string }>().token;
  });
  after(() => node.stop());

  it('lists the queues, and shows the smart-host queue holding both messages', async () => {
    const r = await node.api('GET', '/api/v1/queues');
    assert.equal(r.status, 200, r.body.toString());
    const queues = r.json<{ queues: QueueSummary[] }>().queues;
    const smart = queues.find((q) => q.deliveryType === 'SmartHostConnectorDelivery');
    assert.ok(smart, `a smart-host queue among ${JSON.stringify(queues)}`);
    assert.equal(smart.messageCount, 2);
    assert.equal(smart.recipientCount, 2);
    queue = smart.name;
    const one = await node.api('GET', `/api/v1/queues/${encodeURIComponent(queue)}`);
    assert.equal(one.status, 200);
    assert.equal(one.json<QueueSummary>().name, queue);
    assert.equal(one.json<QueueSummary>().status, 'Retry');
  });

  it('lists messages by queue, status, sender, recipient, subject and time, in pages', async () => {
    const ids = async (query: string) => {
      const r = await node.api('GET', `/api/v1/messages?${query}`);
      assert.equal(r.status, 200, `${query}: ${r.body.toString()}`);
      return r
        .json<{ messages: MessageView[] }>()
        .messages.map((m) => m.id)
        .sort();
    };
    const both = [bobsId, alicesId].sort();
    assert.deepEqual(await ids(''), both);
    assert.deepEqual(await ids(`queue=${encodeURIComponent(queue)}`), both);
    assert.deepEqual(await ids('status=Retry'), both);
    assert.deepEqual(await ids('status=Suspended'), []);
    assert.deepEqual(await ids('sender=BOB%40example.test'), [bobsId], 'sender, case-insensitive');
    assert.deepEqual(await ids('recipient=y%40remote.test'), [alicesId]);
    assert.deepEqual(await ids('subject=quarterly'), [bobsId], 'subject substring, case-insensitive');
    const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
    assert.deepEqual(await ids(`receivedAfter=${encodeURIComponent(hourAgo)}`), both, 'ISO 8601');
    assert.deepEqual(await ids(`receivedBefore=${Date.now() - 3_600_000}`), [], 'ms since epoch');

    const first = await node.api('GET', '/api/v1/messages?limit=1');
    const page = first.json<{ messages: MessageView[]; nextAfter?: string }>();
    assert.equal(page.messages.length, 1);
    assert.equal(page.nextAfter, page.messages[0]!.id, 'a full page says where the next starts');
    const second = (await node.api('GET', `/api/v1/messages?limit=1&after=${page.nextAfter}`)).json<{
      messages: MessageView[];
    }>();
    assert.equal(second.messages.length, 1);
    assert.notEqual(second.messages[0]!.id, page.messages[0]!.id);
  });

  it('refuses malformed filters with 400 and the reason', async () => {
    const cases: Array<[string, RegExp]> = [
      ['limit=0', /limit must be >= 1/],
      ['limit=1001', /limit must be <= 1000/],
      ['limit=ten', /limit must be integer/],
      ['status=Stuck', /status must be equal to one of the allowed values/],
      ['receivedAfter=yesterday', /receivedAfter.*ISO 8601/],
      ['receivedBefore=2026-13-45T00:00:00Z', /receivedBefore.*not a real date/],
      ['sendr=bob%40example.test', /must NOT have additional properties/],
      ['after=..%2F..', /after must match pattern/],
    ];
    for (const [query, reason] of cases) {
      const r = await node.api('GET', `/api/v1/messages?${query}`);
      assert.equal(r.status, 400, query);
      assert.equal(r.json().error, 'bad-request', query);
      assert.match(String(r.json().message), reason, query);
    }
  });

  it('shows one message with its status, queues and per-recipient state', async () => {
    const m = await message(bobsId);
    assert.ok(m);
    assert.equal(m.id, bobsId);
    assert.equal(m.sender, 'bob@example.test');
    assert.equal(m.subject, 'Quarterly report');
    assert.equal(m.status, 'Retry');
    assert.deepEqual(m.queues, [queue]);
    assert.equal(m.recipients.length, 1);
    const [r] = m.recipients;
    assert.equal(r!.address, 'x@remote.test');
    assert.equal(r!.status, 'pending');
    assert.match(r!.lastResponse ?? '', /^4\d\d /, "the smart host's 421 is a transient failure");
  });

  it('exports the message as message/rfc822: the bytes sent, under the headers the node added', async () => {
    const r = await node.api('GET', `/api/v1/messages/${bobsId}/eml`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'message/rfc822');
    assert.equal(r.headers['content-disposition'], `attachment; filename="${bobsId}.eml"`);
    const sent = Buffer.from(bobsBody);
    assert.ok(r.body.subarray(r.body.length - sent.length).equals(sent), 'ends with exactly the bytes sent');
    const added = r.body.subarray(0, r.body.length - sent.length).toString('latin1');
    assert.match(
      added,
      /^(?:[A-Za-z-]+:[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*)+$/,
      'only header fields in front',
    );
    assert.match(added, /^Received: /m);
  });

  it('suspends and resumes a queue (with an API token)', async () => {
    const path = `/api/v1/queues/${encodeURIComponent(queue)}`;
    const suspended = await node.api('POST', `${path}/suspend`, { token: API_TOKEN });
    assert.equal(suspended.status, 204);
    assert.equal(suspended.body.length, 0);
    assert.equal((await node.api('GET', path)).json<QueueSummary>().status, 'Suspended');
    assert.equal((await node.api('POST', `${path}/resume`, { token: API_TOKEN })).status, 204);
    assert.notEqual((await node.api('GET', path)).json<QueueSummary>().status, 'Suspended');
  });

  it('suspends and resumes a message (with a session token)', async () => {
    assert.equal(
      (await node.api('POST', `/api/v1/messages/${bobsId}/suspend`, { token: session })).status,
      204,
    );
    const held = await message(bobsId);
    assert.equal(held?.status, 'Suspended');
    assert.equal(held?.recipients[0]?.status, 'suspended');
    assert.equal(
      (await node.api('POST', `/api/v1/messages/${bobsId}/resume`, { token: session })).status,
      204,
    );
    assert.notEqual((await message(bobsId))?.status, 'Suspended');
  });

  it('retries a queue now and resubmits a message', async () => {
    const before = Date.now();
    const r = await node.api('POST', `/api/v1/queues/${encodeURIComponent(queue)}/retry`);
    assert.equal(r.status, 200);
    assert.ok(r.json<{ recipients: number }>().recipients >= 1, r.body.toString());
    // Made due now: the next attempt runs (and fails again against the busy smart host). The
    // operations after this one wait for it to be over: a message in delivery cannot be changed.
    const attempted = (id: string, attempts: number) =>
      eventually(`attempt ${attempts} of ${id}`, async () => {
        const m = await message(id);
        return m && m.status === 'Retry' && m.recipients[0]!.attempts >= attempts ? m : undefined;
      });
    await attempted(bobsId, 2);
    await attempted(alicesId, 2);
    assert.equal((await node.api('POST', `/api/v1/messages/${alicesId}/resubmit`)).status, 204);
    const resubmitted = await attempted(alicesId, 3);
    assert.ok(resubmitted.recipients[0]!.nextAttemptAt > before);
  });

  it('refuses to release a message that is not in Poison (409)', async () => {
    const r = await node.api('POST', `/api/v1/messages/${bobsId}/release`);
    assert.equal(r.status, 409);
    assert.equal(r.json().error, 'conflict');
  });

  it('answers 404 for an unknown message or queue, and 400 for a malformed id', async () => {
    for (const [method, path] of [
      ['GET', '/api/v1/messages/ZZZZZZZZ'],
      ['GET', '/api/v1/messages/ZZZZZZZZ/eml'],
      ['POST', '/api/v1/messages/ZZZZZZZZ/suspend'],
      ['POST', '/api/v1/messages/ZZZZZZZZ/release'],
      ['DELETE', '/api/v1/messages/ZZZZZZZZ?ndr=false'],
      ['GET', '/api/v1/queues/smtp%3Anowhere.test'],
      ['POST', '/api/v1/queues/smtp%3Anowhere.test/suspend'],
      ['POST', '/api/v1/queues/smtp%3Anowhere.test/retry'],
    ] as const) {
      const r = await node.api(method, path);
      assert.equal(r.status, 404, `${method} ${path}: ${r.body.toString()}`);
      assert.equal(r.json().error, 'not-found');
    }
    const bad = await node.api('GET', '/api/v1/messages/not%20an%20id');
    assert.equal(bad.status, 400);
    assert.match(String(bad.json().message), /params\/id/);
  });

  it('refuses a remove that does not say whether to send an NDR', async () => {
    for (const query of ['', '?ndr=', '?ndr=maybe']) {
      const r = await node.api('DELETE', `/api/v1/messages/${bobsId}${query}`);
      assert.equal(r.status, 400, query);
      assert.match(String(r.json().message), /ndr/, query);
    }
    assert.ok(await message(bobsId), 'still queued');
  });

  it('removes with ndr=false silently, and with ndr=true the sender gets an NDR', async () => {
    assert.equal((await node.api('DELETE', `/api/v1/messages/${bobsId}?ndr=false`)).status, 204);
    assert.equal(await message(bobsId), undefined, 'gone');
    assert.equal((await node.api('DELETE', `/api/v1/messages/${alicesId}?ndr=true`)).status, 204);
    assert.equal(await message(alicesId), undefined, 'gone');
    const [ndr] = await waitForMessages(node.t.mailbox('alice@example.test'), 1);
    assert.match(ndr!.toString('utf8'), /5\.7\.1/);
    assert.deepEqual(await newMessages(node.t.mailbox('bob@example.test')), [], 'no NDR for ndr=false');
  });

  it('recorded every change as an ADMIN event naming who did what, to which queue or message', () => {
    const seen = node.adminEvents.map((e) => ({
      who: e.relatedRecipient,
      detail: e.detail,
      ...(e.internalId ? { id: e.internalId } : {}),
    }));
    assert.deepEqual(
      seen.map((e) => ({ ...e, detail: e.detail?.replace(/ recipients=\d+$/, '') })),
      [
        { who: 'token:ci', detail: `suspend queue=${queue}` },
        { who: 'token:ci', detail: `resume queue=${queue}` },
        { who: `account:${ADMIN_ACCOUNT}`, detail: 'suspend', id: bobsId },
        { who: `account:${ADMIN_ACCOUNT}`, detail: 'resume', id: bobsId },
        { who: 'local-token', detail: `retry queue=${queue}` },
        { who: 'local-token', detail: 'resubmit', id: alicesId },
        { who: 'local-token', detail: 'remove ndr=false', id: bobsId },
        { who: 'local-token', detail: 'remove ndr=true', id: alicesId },
      ],
    );
    for (const e of node.adminEvents) assert.equal(e.source, 'ADMIN');
  });

  it('finds the ADMIN events in message tracking', async () => {
    const events = await eventually('ADMIN events in the tracking log', async () => {
      const r = await node.api('GET', `/api/v1/tracking?eventId=ADMIN&internalId=${bobsId}`);
      assert.equal(r.status, 200, r.body.toString());
      const page = r.json<{ events: Array<{ detail: string; relatedRecipient: string }> }>();
      return page.events.length >= 3 ? page.events : undefined;
    });
    assert.deepEqual(
      events.map((e) => e.detail),
      ['suspend', 'resume', 'remove ndr=false'],
    );
  });
});
