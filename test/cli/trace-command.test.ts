import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TrackingPage } from '../../src/tracking/types.ts';
import { type CliNode, sendMessage, startCliNode } from './cli-node.ts';
import { type CliResult, ferrymailAsync, ferrymailUntil } from './run-cli-async.ts';

function ok(r: CliResult): CliResult {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
  return r;
}

const page = (r: CliResult) => JSON.parse(ok(r).stdout) as TrackingPage;

/** `ferrymail trace`: message tracking searched from the command line, every filter, on a running node. */
describe('ferrymail trace, on a running node', () => {
  let n: CliNode;
  let cli: (args: string[]) => Promise<CliResult>;
  let first: string;
  let second: string;
  before(async () => {
    n = await startCliNode();
    cli = (args) => ferrymailAsync([...args, '--config', n.configFile]);
    first = await sendMessage(n.smtpPort, {
      from: 'someone@elsewhere.test',
      to: ['alice@example.test'],
      subject: 'Lunch on Friday',
      messageId: '<lunch-1@elsewhere.test>',
    });
    second = await sendMessage(n.smtpPort, {
      from: 'other@elsewhere.test',
      to: ['bob@example.test'],
      subject: 'Invoice 42',
      messageId: '<invoice-42@elsewhere.test>',
    });
    // Both delivered and their events searchable.
    await ferrymailUntil(['trace', '--event', 'DELIVER', '--json', '--config', n.configFile], (r) => {
      if (r.code !== 0) return false;
      const ids = page(r).events.map((e) => e.internalId);
      return ids.includes(first) && ids.includes(second);
    });
  });
  after(() => n?.stop());

  it('follows one message by its queue id: RECEIVE then DELIVER, as a table', async () => {
    const r = ok(
      await ferrymailAsync(['trace', '--id', first, '--config', n.configFile], { env: { COLUMNS: '200' } }),
    );
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^TIME +EVENT +SOURCE +ID +SENDER +RECIPIENTS +STATUS$/);
    const events = lines.slice(1).map((l) => l.split(/ {2,}/)[1]);
    assert.ok(
      events.indexOf('RECEIVE') >= 0 && events.indexOf('RECEIVE') < events.indexOf('DELIVER'),
      r.stdout,
    );
    assert.ok(
      lines.slice(1).every((l) => l.includes(first)),
      'only events of that message',
    );
    assert.match(r.stdout, /DELIVER +\S+ +\S+ +someone@elsewhere\.test +alice@example\.test +250 /);
  });

  it('filters by event, sender, recipient, Message-ID and subject', async () => {
    const ids = (r: CliResult) => [...new Set(page(r).events.map((e) => e.internalId))];
    assert.deepEqual(ids(await cli(['trace', '--sender', 'other@elsewhere.test', '--json'])), [second]);
    assert.deepEqual(
      ids(await cli(['trace', '--recipient', 'alice@example.test', '--event', 'deliver', '--json'])),
      [first],
    );
    assert.deepEqual(ids(await cli(['trace', '--message-id', 'invoice-42@elsewhere.test', '--json'])), [
      second,
    ]);
    assert.deepEqual(ids(await cli(['trace', '--subject', 'lunch', '--json'])), [first]);
    const delivers = page(await cli(['trace', '--event', 'DELIVER', '--json'])).events;
    assert.ok(delivers.length >= 2 && delivers.every((e) => e.eventId === 'DELIVER'));
  });

  it('filters by a time window, relative or ISO 8601', async () => {
    assert.ok(page(await cli(['trace', '--start', '-1h', '--json'])).events.length >= 4);
    assert.equal(page(await cli(['trace', '--end', '-1h', '--json'])).events.length, 0);
    const future = new Date(Date.now() + 3_600_000).toISOString();
    assert.equal(page(await cli(['trace', `--start=${future}`, '--json'])).events.length, 0);
    const none = ok(await cli(['trace', '--end', '-1h']));
    assert.equal(none.stdout, 'No tracking events match.\n');
  });

  it('pages with --limit, saying how to get the next page', async () => {
    const r = ok(await cli(['trace', '--limit', '1']));
    assert.equal(r.stdout.trimEnd().split('\n').length, 2, 'header and one event');
    const cursor = /add --cursor (\S+)\)/.exec(r.stderr)?.[1];
    assert.ok(cursor, r.stderr);
    const next = page(await cli(['trace', '--limit', '1', '--cursor', cursor, '--json']));
    assert.equal(next.events.length, 1);
    const firstPage = page(await cli(['trace', '--limit', '1', '--json']));
    assert.ok(next.events[0]!.seq > firstPage.events[0]!.seq, 'the next page goes on after the first');
  });

  it('refuses an unknown event id before asking the node: exit 2', async () => {
    const r = await cli(['trace', '--event', 'BOUNCE']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--event must be one of RECEIVE/);
    assert.match(r.stderr, /Usage: ferrymail trace/);
  });
});
