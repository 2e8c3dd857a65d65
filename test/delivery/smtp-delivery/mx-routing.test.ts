import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDnsServer, type TestDnsServer } from '../../helpers/dns-server.ts';
import { removeDir, startTestNode, type TestNode, waitForMessages } from '../../helpers/node-fixture.ts';
import { SmtpSink } from '../../helpers/smtp-sink.ts';
import { attempted, outboundConfig, submit, waitForQueued } from './outbound-fixture.ts';

/**
 * With DNS routing, mail goes to the recipient domain's MX hosts in preference order, falls back
 * to the next MX when one cannot be reached, uses the domain's own address when it has no MX,
 * and turns what DNS says into the right outcome: a null MX or a domain that does not exist
 * fails at once, a DNS server that does not answer defers.
 */
describe('delivery by MX', () => {
  let dns: TestDnsServer;
  let sink: SmtpSink;
  let t: TestNode;
  let dir: string;

  before(async () => {
    sink = await SmtpSink.start({ hostname: 'mx2.remote.test' });
    dns = await startDnsServer({
      // The preferred MX is on 127.0.0.2, where nothing listens: its connection is refused.
      'remote.test': {
        MX: [
          { preference: 10, exchange: 'mx1.remote.test' },
          { preference: 20, exchange: 'mx2.remote.test' },
        ],
      },
      'mx1.remote.test': { A: ['127.0.0.2'] },
      'mx2.remote.test': { A: ['127.0.0.1'] },
      'implicit.test': { A: ['127.0.0.1'] },
      'nullmx.test': { MX: [{ preference: 0, exchange: '.' }] },
      'slow.test': { timeout: true },
      'private.test': { MX: [{ preference: 10, exchange: 'mx.private.test' }] },
      'mx.private.test': { A: ['10.1.2.3'] },
    });
    // The sink is on loopback, so this node allows private addresses; the refusal has its own node below.
    const made = await outboundConfig(
      [{ name: 'Internet', addressSpaces: ['*'], routing: { type: 'dns' }, port: sink.port, mtaSts: false }],
      { dns: { servers: [dns.server], timeout: '300ms', tries: 1, allowPrivateAddresses: true } },
    );
    dir = made.dir;
    t = await startTestNode({ dir, config: made.config });
  });
  after(async () => {
    await t.stop();
    await sink.close();
    await dns.close();
    await removeDir(dir);
  });

  it('tries the MX hosts in preference order and falls back when the first refuses', async () => {
    const before = sink.transactions.length;
    await submit(t.port('Relay'), 'app@example.test', ['x@remote.test']);
    await sink.waitFor(() => sink.transactions.length === before + 1);
    assert.deepEqual(sink.transactions.at(-1)!.accepted, ['x@remote.test']);
    const asked = dns.queries.map((q) => `${q.type} ${q.name}`);
    assert.ok(asked.includes('MX remote.test'));
    assert.ok(asked.includes('A mx1.remote.test'), 'the preferred MX was looked up');
  });

  it("uses the domain's own address when it has no MX (implicit MX)", async () => {
    const before = sink.transactions.length;
    await submit(t.port('Relay'), 'app@example.test', ['y@implicit.test']);
    await sink.waitFor(() => sink.transactions.length === before + 1);
    assert.deepEqual(sink.transactions.at(-1)!.accepted, ['y@implicit.test']);
  });

  it('fails a domain with a null MX at once with 5.1.10, and a domain that does not exist with 5.1.2', async () => {
    const id = await submit(t.port('Relay'), 'app@example.test', [
      'a@nullmx.test',
      'b@nowhere.test',
      'c@slow.test',
    ]);
    const message = await waitForQueued((m) => t.node.store.getMessage(m), id, attempted);
    const [nullMx, nowhere, slow] = message.recipients;
    assert.equal(nullMx!.status, 'failed');
    assert.match(nullMx!.lastResponse ?? '', /^5\d\d 5\.1\.10 /);
    assert.equal(nowhere!.status, 'failed');
    assert.match(nowhere!.lastResponse ?? '', /^5\d\d 5\.1\.2 /);
    assert.equal(slow!.status, 'pending', 'a DNS timeout defers');
    assert.match(slow!.lastResponse ?? '', /^4\d\d 4\.4\.3 /);
  });

  it('refuses MX answers that point into private networks unless allowed', async () => {
    const made = await outboundConfig(
      [{ name: 'Internet', addressSpaces: ['*'], routing: { type: 'dns' }, port: sink.port, mtaSts: false }],
      { dns: { servers: [dns.server], timeout: '300ms', tries: 1, allowPrivateAddresses: false } },
    );
    const strict = await startTestNode({ dir: made.dir, config: made.config });
    try {
      await submit(strict.port('Relay'), 'alice@example.test', ['p@private.test']);
      const [ndr] = await waitForMessages(strict.mailbox('alice@example.test'), 1);
      const text = ndr!.toString('latin1');
      assert.match(text, /\nFinal-Recipient: rfc822; ?p@private\.test\r?\n/i);
      assert.match(text, /\nStatus: 5\.4\.4\r?\n/, 'hosts without an acceptable address: 5.4.4');
      assert.match(text, /10\.1\.2\.3/, 'the report names the refused address');
      assert.equal(sink.transactions.filter((t) => t.accepted.includes('p@private.test')).length, 0);
    } finally {
      await strict.stop();
      await removeDir(made.dir);
    }
  });
});
