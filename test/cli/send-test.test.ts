import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseServer } from '../../src/cli/send-test.ts';
import { freePort, waitForMessages } from '../helpers/node-fixture.ts';
import { type CliNode, startCliNode } from './cli-node.ts';
import { ferrymailAsync } from './run-cli-async.ts';

/** `ferrymail send-test`: a test message through the node's own SMTP, with defaults from its config. */
describe('ferrymail send-test, on a running node', () => {
  let n: CliNode;
  before(async () => {
    n = await startCliNode();
  });
  after(() => n?.stop());

  it('sends from postmaster@<default domain> to the first mailbox through the anonymous connector, printing the queue id', async () => {
    const r = await ferrymailAsync(['send-test', '--config', n.configFile]);
    assert.equal(r.code, 0, r.stderr);
    const m =
      /^Queued as (\S+) \(postmaster@example\.test to alice@example\.test through 127\.0\.0\.1:(\d+)\)\n$/.exec(
        r.stdout,
      );
    assert.ok(m, r.stdout);
    assert.equal(Number(m[2]), n.smtpPort, 'the Default connector, from the config');
    const [message] = await waitForMessages(n.node.mailbox('alice@example.test'), 1);
    const text = message!.toString('utf8');
    assert.match(text, /^Subject: Ferrymail test message\r?$/m);
    assert.match(text, /^Message-ID: <[^>]+>\r?$/m);
    assert.match(
      text,
      new RegExp(`^\\tid ${m[1]}\r?$`, 'm'),
      'the printed id is the one in our Received header',
    );
  });

  it('takes --to, --from, --subject and --server', async () => {
    const r = await ferrymailAsync([
      'send-test',
      '--to',
      'bob@example.test',
      '--from',
      'tester@elsewhere.test',
      '--subject',
      'Checking the Default connector',
      '--server',
      `127.0.0.1:${n.smtpPort}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const [message] = await waitForMessages(n.node.mailbox('bob@example.test'), 1);
    assert.match(message!.toString('utf8'), /^Subject: Checking the Default connector\r?$/m);
    assert.match(message!.toString('utf8'), /^Return-Path: <tester@elsewhere\.test>\r?$/m);
  });

  it("prints the server's refusal and exits 1", async () => {
    const r = await ferrymailAsync(['send-test', '--config', n.configFile, '--to', 'nobody@example.test']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^ferrymail: 127\.0\.0\.1:\d+ refused the message: 550 5\.1\.1 /);
    assert.equal(r.stdout, '');
  });

  it('exits 3 when nothing listens at the server', async () => {
    const port = await freePort();
    const r = await ferrymailAsync(['send-test', '--config', n.configFile, '--server', `127.0.0.1:${port}`]);
    assert.equal(r.code, 3);
    assert.match(
      r.stderr,
      new RegExp(
        `cannot connect to 127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${port}: ECONNREFUSED: is the node running\\?`,
      ),
    );
  });

  it('refuses a subject with a line break and a bad address with exit 2', async () => {
    for (const args of [
      ['--subject', 'a\r\nBcc: x@example.org'],
      ['--to', 'not an address'],
      ['--server', 'localhost'],
    ]) {
      const r = await ferrymailAsync(['send-test', '--config', n.configFile, ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /Usage: ferrymail send-test/);
    }
  });
});

describe('send-test: where it connects', () => {
  it('reaches a binding on every address (":2525", "0.0.0.0", "[::]") on this host', () => {
    assert.deepEqual(parseServer(':2525'), { host: '127.0.0.1', port: 2525 });
    assert.deepEqual(parseServer('0.0.0.0:25'), { host: '127.0.0.1', port: 25 });
    assert.deepEqual(parseServer('[::]:587'), { host: '::1', port: 587 });
    assert.deepEqual(parseServer('[2001:db8::1]:25'), { host: '2001:db8::1', port: 25 });
    assert.deepEqual(parseServer('mx.example.test:2525'), { host: 'mx.example.test', port: 2525 });
  });

  it('refuses what is not host:port with a usage error', () => {
    for (const bad of ['mx.example.test', 'a:b:25', ':0', ':70000', '[::1]']) {
      assert.throws(() => parseServer(bad), /--server: expected host:port/, bad);
    }
  });
});
