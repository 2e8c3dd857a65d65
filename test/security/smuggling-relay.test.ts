import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { outboundConfig } from '../delivery/smtp-delivery/outbound-fixture.ts';
import { removeDir, startTestNode, type TestNode } from '../helpers/node-fixture.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';
import { HIDDEN_SENDER, SMUGGLING_ENDINGS, smuggle } from './smuggling-endings.ts';

/**
 * SMTP smuggling through a relay: whatever ending a client hides a second transaction behind,
 * the relay sends the next hop exactly one transaction per message, and its wire bytes carry
 * CRLF line endings only, so no bare CR or LF can end the data at a lenient next hop. Run once
 * against a smart host that only takes DATA (dot-stuffing) and once against one offering CHUNKING.
 */
const HIDDEN_RECIPIENT = 'hidden@remote.test';

/** Where a wire carries a CR not followed by LF, or an LF not preceded by CR. */
function bareLineEndings(wire: Buffer): string[] {
  const text = wire.toString('latin1');
  const found: string[] = [];
  for (const m of text.matchAll(/\r(?!\n)|(?<!\r)\n/g)) {
    found.push(
      `${JSON.stringify(m[0])} at ${m.index}: ${JSON.stringify(text.slice(Math.max(0, m.index - 20), m.index + 20))}`,
    );
  }
  return found;
}

for (const chunking of [false, true]) {
  describe(`SMTP smuggling through a relay to a smart host (${chunking ? 'CHUNKING' : 'DATA only'})`, () => {
    let sink: SmtpSink;
    let t: TestNode;
    let dir: string;
    let serial = 0;

    before(async () => {
      sink = await SmtpSink.start({ extensions: { chunking, binaryMime: chunking } });
      const made = await outboundConfig([
        {
          name: 'SmartHost',
          addressSpaces: ['*'],
          routing: { type: 'smartHost', hosts: [`127.0.0.1:${sink.port}`] },
        },
      ]);
      dir = made.dir;
      const relay = (name: string, bareLineEndings: 'reject' | 'normalize') => ({
        name,
        bindings: ['127.0.0.1:0'],
        remoteRanges: ['127.0.0.1/32'],
        permissionGroups: { anonymous: ['submit', 'relay'] },
        tls: { mode: 'none' },
        bareLineEndings,
        // Were a hidden transaction taken for commands, the synchronization check would cut the
        // session before it ran and hide the flaw: off, so the test can see it.
        forbidUnauthPipelining: false,
      });
      const config = made.config as { receiveConnectors: unknown[] };
      config.receiveConnectors.push(relay('RelayNormalize', 'normalize'), relay('RelayReject', 'reject'));
      t = await startTestNode({ dir, config });
    });
    after(async () => {
      await t?.stop();
      await sink?.close();
      if (dir) await removeDir(dir);
    });

    async function ready(
      connector: string,
      sender: string,
      recipient = 'x@remote.test',
    ): Promise<SmtpTestClient> {
      const c = await SmtpTestClient.connect(t.port(connector));
      assert.equal((await c.greeting()).code, 220);
      assert.equal((await c.command('EHLO client.example.test')).code, 250);
      assert.equal((await c.command(`MAIL FROM:<${sender}>`)).code, 250);
      assert.equal((await c.command(`RCPT TO:<${recipient}>`)).code, 250);
      return c;
    }

    /** Waits until the node's queue is empty: everything it accepted has been relayed. */
    async function drained(): Promise<void> {
      const deadline = Date.now() + 10_000;
      while ((await t.node.store.listMessages()).length > 0) {
        assert.ok(Date.now() < deadline, 'the relay did not empty its queue');
        await new Promise((r) => setTimeout(r, 25));
      }
    }

    /** One transaction from `sender` reached the sink, none from the hidden sender, CRLF only on every wire. */
    async function relayedOnce(sender: string) {
      await sink.waitFor(() => sink.transactions.some((x) => x.sender === sender));
      await drained();
      const mine = sink.transactions.filter((x) => x.sender === sender);
      assert.equal(mine.length, 1, `${mine.length} transactions relayed for one message`);
      assert.deepEqual(mine[0]!.accepted, ['x@remote.test']);
      assert.deepEqual(
        sink.transactions.filter((x) => x.sender === HIDDEN_SENDER || x.accepted.includes(HIDDEN_RECIPIENT)),
        [],
        'the hidden transaction was relayed',
      );
      for (const connection of sink.connections) {
        assert.deepEqual(
          bareLineEndings(sink.wire(connection.index)),
          [],
          `sink connection ${connection.index}`,
        );
      }
      return mine[0]!;
    }

    for (const ending of SMUGGLING_ENDINGS) {
      it(`DATA with ${JSON.stringify(ending)}: one transaction relayed, CRLF only`, async () => {
        const sender = `outer${++serial}@client.example.test`;
        const c = await ready('RelayNormalize', sender);
        try {
          assert.equal((await c.command('DATA')).code, 354);
          c.write(smuggle(ending, HIDDEN_RECIPIENT));
          const r = await c.reply();
          assert.equal(r.code, 250, r.text);
          // The next reply is to our NOOP: no reply to a hidden MAIL, RCPT or DATA ever comes.
          assert.equal((await c.command('NOOP')).text, '2.0.0 Ok');
        } finally {
          c.close();
        }
        const tx = await relayedOnce(sender);
        assert.match(tx.body.toString('latin1'), /\r\nSubject: outer\r\n\r\nouter body\r\n/);
      });
    }

    // Chunks cut mid-line and between a CR and its LF: a bare CR at a chunk's end, a real CRLF
    // split across two chunks, bare LFs, and a hidden transaction behind `\n.\n`.
    const CHUNKS = [
      'Subject: bdat\r\n\r\nbare LF\nthen bare CR\r',
      'next line\r',
      '\nsplit CRLF\n.\n',
      `MAIL FROM:<${HIDDEN_SENDER}>\r\nRCPT TO:<${HIDDEN_RECIPIENT}>\r\nDATA\r\nhidden\r\n.\r\nend\n`,
    ];

    async function sendChunks(c: SmtpTestClient): Promise<string> {
      for (const [i, chunk] of CHUNKS.entries()) {
        const last = i === CHUNKS.length - 1;
        c.write(`BDAT ${Buffer.byteLength(chunk)}${last ? ' LAST' : ''}\r\n${chunk}`);
        const r = await c.reply();
        if (last) return `${r.code} ${r.text}`;
        assert.equal(r.code, 250, `chunk ${i + 1}: ${r.text}`);
      }
      throw new Error('unreachable');
    }

    it('BDAT with bare LF and CR in Reject mode: 554 5.6.11, nothing stored or relayed', async () => {
      const sender = `rejected${++serial}@client.example.test`;
      const control = `control${++serial}@client.example.test`;
      const c = await ready('RelayReject', sender);
      try {
        assert.equal(await sendChunks(c), '554 5.6.11 Message contains bare CR or LF; rejected');
        assert.deepEqual(
          (await t.node.store.listMessages()).filter((m) => m.sender === sender),
          [],
          'the refused message was stored',
        );
        // The session goes on: a clean message after it is relayed.
        assert.equal((await c.command(`MAIL FROM:<${control}>`)).code, 250);
        assert.equal((await c.command('RCPT TO:<x@remote.test>')).code, 250);
        const clean = 'Subject: clean\r\n\r\nclean\r\n';
        c.write(`BDAT ${clean.length} LAST\r\n${clean}`);
        assert.equal((await c.reply()).code, 250);
      } finally {
        c.close();
      }
      await relayedOnce(control);
      assert.equal(
        sink.transactions.filter((x) => x.sender === sender).length,
        0,
        'the refused message was relayed',
      );
    });

    it('BDAT with bare LF and CR in Normalize mode: relayed once, with CRLF only', async () => {
      const sender = `chunks${++serial}@client.example.test`;
      const c = await ready('RelayNormalize', sender);
      try {
        assert.match(await sendChunks(c), /^250 2\.0\.0 Ok: queued as /);
        assert.equal((await c.command('NOOP')).text, '2.0.0 Ok');
      } finally {
        c.close();
      }
      const tx = await relayedOnce(sender);
      const expected =
        'Subject: bdat\r\n\r\nbare LF\r\nthen bare CR\r\nnext line\r\nsplit CRLF\r\n.\r\n' +
        `MAIL FROM:<${HIDDEN_SENDER}>\r\nRCPT TO:<${HIDDEN_RECIPIENT}>\r\nDATA\r\nhidden\r\n.\r\nend\r\n`;
      assert.ok(tx.body.toString('latin1').endsWith(`\r\n${expected}`), tx.body.toString('latin1'));
    });
  });
}
