import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { QueuedMessageView, QueueSummary } from '../../src/queue/admin-types.ts';
import type { TrackingPage } from '../../src/tracking/types.ts';
import { waitForMessages } from '../helpers/node-fixture.ts';
import { type CliNode, sendMessage, startCliNode } from './cli-node.ts';
import { type CliResult, ferrymailAsync, ferrymailUntil } from './run-cli-async.ts';

const UNKNOWN_ID = '0000000000ZZZZZZZZ';

function ok(r: CliResult): CliResult {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
  return r;
}

/**
 * `ferrymail queue …` against a running node, found through `--config` alone (its admin.listen
 * and its token file): every operation, its output, --json, and its exit codes.
 */
describe('ferrymail queue, on a running node', () => {
  let n: CliNode;
  let cli: (args: string[]) => Promise<CliResult>;
  /** Tables as on a wide terminal, for checking whole rows. */
  let wide: (args: string[]) => Promise<CliResult>;
  let queue: string;
  let waiting: string;
  before(async () => {
    n = await startCliNode();
    cli = (args) => ferrymailAsync([...args, '--config', n.configFile]);
    wide = (args) => ferrymailAsync([...args, '--config', n.configFile], { env: { COLUMNS: '200' } });
    // alice sends to another domain: the smart host refuses connections, so it waits in Retry.
    waiting = await sendMessage(n.relayPort, {
      from: 'alice@example.test',
      to: ['someone@example.org'],
      subject: 'Waiting for the smart host',
    });
    const listed = await ferrymailUntil(['queue', 'list', '--json', '--config', n.configFile], (r) => {
      if (r.code !== 0) return false;
      const qs = (JSON.parse(r.stdout) as { queues: QueueSummary[] }).queues;
      return qs.some((q) => q.messageCount > 0 && q.status === 'Retry' && q.lastError !== undefined);
    });
    const queues = (JSON.parse(ok(listed).stdout) as { queues: QueueSummary[] }).queues;
    const remote = queues.find((q) => q.status === 'Retry');
    assert.ok(remote, `a remote queue in Retry: ${listed.stdout}`);
    queue = remote.name;
  });
  after(() => n?.stop());

  it('lists the queues as a table: name, type, status, messages, next retry, last error', async () => {
    const r = ok(await cli(['queue', 'list']));
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^QUEUE +TYPE +STATUS +MESSAGES +NEXT RETRY +LAST ERROR$/);
    const row = lines.find((l) => l.startsWith(queue));
    assert.ok(row, r.stdout);
    assert.match(
      row,
      /SmartHost +Retry +1 +(now|in \d+s|in 1m) +\S/,
      'one message, retrying within the minute, with its error',
    );
    assert.ok(
      lines.every((l) => l.length <= 80),
      'fits 80 columns when not a terminal',
    );
  });

  it('shows the messages of a queue, and filters them', async () => {
    const r = ok(await wide(['queue', 'show', queue]));
    assert.match(r.stdout, /^ID +FROM +RECEIVED +SIZE +STATUS +RECIPIENTS +LAST RESPONSE$/m);
    assert.match(
      r.stdout,
      new RegExp(
        `^${waiting} +alice@example\\.test +\\S+ +[\\d.]+ K?B +Retry +someone@example\\.org +4\\d\\d `,
        'm',
      ),
    );

    const json = JSON.parse(
      ok(await cli(['queue', 'show', queue, '--json', '--status', 'retry'])).stdout,
    ) as {
      messages: QueuedMessageView[];
    };
    assert.deepEqual(
      json.messages.map((m) => m.id),
      [waiting],
    );

    const none = ok(await cli(['queue', 'show', queue, '--sender', 'bob@example.test']));
    assert.equal(none.stdout, `No messages in ${queue} that match.\n`);
    const bySubject = ok(
      await cli([
        'queue',
        'show',
        queue,
        '--subject',
        'smart HOST',
        '--recipient',
        'someone@example.org',
        '--limit',
        '5',
      ]),
    );
    assert.match(bySubject.stdout, new RegExp(waiting));
  });

  it("shows one message with every recipient's status and last response", async () => {
    const r = ok(await wide(['queue', 'show', waiting]));
    assert.match(r.stdout, new RegExp(`^ID: +${waiting}$`, 'm'));
    assert.match(r.stdout, /^Subject: +Waiting for the smart host$/m);
    assert.match(r.stdout, /^From: +alice@example\.test$/m);
    assert.match(r.stdout, /^someone@example\.org +pending +smtp:\S+ +\d+ +\S+Z +4\d\d 4\.\d\.\d /m);
    const json = JSON.parse(ok(await cli(['queue', 'show', waiting, '--json'])).stdout) as QueuedMessageView;
    assert.equal(json.id, waiting);
    assert.equal(json.recipients[0]!.address, 'someone@example.org');
  });

  it('exports the stored message exactly, to stdout and to a file', async () => {
    // What the API serves, byte for byte, fetched directly.
    const token = (await readFile(n.tokenFile, 'utf8')).trim();
    const response = await fetch(`http://127.0.0.1:${n.adminPort}/api/v1/messages/${waiting}/eml`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(response.status, 200);
    const expected = Buffer.from(await response.arrayBuffer());
    const r = ok(await cli(['queue', 'export', waiting]));
    assert.ok(r.bytes.equals(expected), 'stdout holds the stored bytes, nothing added');
    assert.match(r.stdout, /Subject: Waiting for the smart host\r\n/);
    const file = join(n.node.dir, 'export.eml');
    const w = ok(await cli(['queue', 'export', waiting, '--out', file]));
    assert.match(w.stdout, new RegExp(`^Wrote message ${waiting} \\(${expected.length} bytes\\) to `));
    assert.ok((await readFile(file)).equals(expected));
  });

  it('suspends and resumes a queue', async () => {
    assert.equal(ok(await cli(['queue', 'suspend', queue])).stdout, `Suspended queue ${queue}\n`);
    const listed = JSON.parse(ok(await cli(['queue', 'list', '--json'])).stdout) as {
      queues: QueueSummary[];
    };
    assert.equal(listed.queues.find((q) => q.name === queue)?.status, 'Suspended');
    assert.equal(ok(await cli(['queue', 'resume', queue])).stdout, `Resumed queue ${queue}\n`);
    const again = JSON.parse(ok(await cli(['queue', 'list', '--json'])).stdout) as { queues: QueueSummary[] };
    assert.notEqual(again.queues.find((q) => q.name === queue)?.status, 'Suspended');
  });

  it('suspends and resumes a message', async () => {
    assert.equal(ok(await cli(['queue', 'suspend', waiting])).stdout, `Suspended message ${waiting}\n`);
    const shown = JSON.parse(ok(await cli(['queue', 'show', waiting, '--json'])).stdout) as QueuedMessageView;
    assert.equal(shown.status, 'Suspended');
    assert.equal(ok(await cli(['queue', 'resume', waiting])).stdout, `Resumed message ${waiting}\n`);
    const back = JSON.parse(ok(await cli(['queue', 'show', waiting, '--json'])).stdout) as QueuedMessageView;
    assert.notEqual(back.status, 'Suspended');
  });

  it('retries a queue now, and says how many recipients', async () => {
    const before = JSON.parse(
      ok(await cli(['queue', 'show', waiting, '--json'])).stdout,
    ) as QueuedMessageView;
    const r = ok(await cli(['queue', 'retry', queue]));
    assert.equal(r.stdout, `Retrying now: 1 recipient in ${queue}\n`);
    // The attempt is made at once, and fails again against the dead smart host.
    const after = await ferrymailUntil(
      ['queue', 'show', waiting, '--json', '--config', n.configFile],
      (x) => {
        const m = JSON.parse(x.stdout) as QueuedMessageView;
        return m.recipients[0]!.attempts > before.recipients[0]!.attempts;
      },
    );
    const m = JSON.parse(ok(after).stdout) as QueuedMessageView;
    assert.ok(
      m.recipients[0]!.attempts > before.recipients[0]!.attempts,
      'retry made another attempt at once',
    );
    const json = JSON.parse(ok(await cli(['queue', 'retry', queue, '--json'])).stdout) as {
      recipients: number;
    };
    assert.equal(typeof json.recipients, 'number');
  });

  it('resubmits a message', async () => {
    assert.equal(ok(await cli(['queue', 'resubmit', waiting])).stdout, `Resubmitted message ${waiting}\n`);
    // Every change is audited as an ADMIN event naming who did it: here the local token file.
    const audit = await ferrymailUntil(
      ['trace', '--id', waiting, '--event', 'ADMIN', '--json', '--config', n.configFile],
      (x) => x.stdout.includes('resubmit'),
    );
    const events = (JSON.parse(ok(audit).stdout) as TrackingPage).events;
    const resubmit = events.find((e) => e.detail?.startsWith('resubmit'));
    assert.ok(resubmit, audit.stdout);
    assert.equal(resubmit.relatedRecipient, 'local-token');
  });

  it('refuses to release a message that is not in Poison: exit 1 with the reason', async () => {
    const r = await cli(['queue', 'release', waiting]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^ferrymail: .*Poison.* \(409\)\n$/);
  });

  it('removes a message without an NDR: gone, a DROP is tracked, the sender hears nothing', async () => {
    const id = await sendMessage(n.relayPort, {
      from: 'bob@example.test',
      to: ['x@example.org'],
      subject: 'Drop me',
    });
    const r = ok(await cli(['queue', 'remove', id, '--no-ndr']));
    assert.equal(r.stdout, `Removed message ${id}; no non-delivery report\n`);
    const gone = await cli(['queue', 'show', id]);
    assert.equal(gone.code, 1);
    const dropped = await ferrymailUntil(
      ['trace', '--id', id, '--event', 'DROP', '--json', '--config', n.configFile],
      (x) => x.stdout.includes('"DROP"'),
    );
    assert.match(ok(dropped).stdout, /"eventId": "DROP"/);
  });

  it('removes a message with an NDR: the sender gets a non-delivery report', async () => {
    const r = ok(await cli(['queue', 'remove', waiting, '--ndr']));
    assert.equal(r.stdout, `Removed message ${waiting}; the sender gets a non-delivery report\n`);
    const [ndr] = await waitForMessages(n.node.mailbox('alice@example.test'), 1);
    assert.match(ndr!.toString('latin1'), /someone@example\.org/);
    assert.match(ndr!.toString('latin1'), /5\.7\.1/);
  });

  it('answers an unknown message id with exit 1 and the reason', async () => {
    for (const args of [
      ['queue', 'show', UNKNOWN_ID],
      ['queue', 'suspend', UNKNOWN_ID],
      ['queue', 'export', UNKNOWN_ID],
      ['queue', 'remove', UNKNOWN_ID, '--ndr'],
    ]) {
      const r = await cli(args);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^ferrymail: .*${UNKNOWN_ID}.* \\(404\\)\\n$`), args.join(' '));
      assert.equal(r.stdout, '');
    }
    for (const command of ['retry', 'show', 'suspend']) {
      const q = await cli(['queue', command, 'smtp:nowhere.example']);
      assert.equal(q.code, 1, `queue ${command}: ${q.stderr}`);
      assert.match(q.stderr, /^ferrymail: .*smtp:nowhere\.example.* \(404\)\n$/, `queue ${command}`);
    }
  });

  it('refuses remove without exactly one of --ndr and --no-ndr: exit 2 with the usage', async () => {
    for (const args of [
      ['queue', 'remove', UNKNOWN_ID],
      ['queue', 'remove', UNKNOWN_ID, '--ndr', '--no-ndr'],
    ]) {
      const r = await cli(args);
      assert.equal(r.code, 2, r.stderr);
      assert.match(
        r.stderr,
        /^ferrymail: queue remove needs exactly one of --ndr or --no-ndr\n\nUsage: ferrymail queue/,
      );
    }
  });
});
