import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../helpers/node-fixture.ts';
import { connector, type ReceiveHarness, startReceiveHarness } from '../helpers/receive-fakes.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';

/** Connectors sharing one binding: the most specific remote range takes the connection. */
describe('choosing a receive connector by remote range', () => {
  let h: ReceiveHarness;
  let port: number;
  before(async () => {
    port = await freePort();
    const binding = `127.0.0.1:${port}`;
    h = await startReceiveHarness([
      connector({ name: 'Anyone', bindings: [binding], banner: 'anyone', remoteRanges: ['0.0.0.0/0'] }),
      connector({ name: 'Loopback', bindings: [binding], banner: 'loopback', remoteRanges: ['127.0.0.0/8'] }),
      connector({ name: 'Host', bindings: [binding], banner: 'host', remoteRanges: ['127.0.0.5'] }),
      connector({
        name: 'Range',
        bindings: [binding],
        banner: 'range',
        remoteRanges: ['127.0.0.8-127.0.0.11'],
      }),
    ]);
  });
  after(() => h.close());

  async function bannerFrom(localAddress: string): Promise<string> {
    const c = await SmtpTestClient.connect(port, { localAddress });
    const g = await c.greeting();
    c.close();
    return g.text;
  }

  it('gives a single-address range precedence over a /8 and over 0.0.0.0/0', async () => {
    assert.equal(await bannerFrom('127.0.0.5'), 'host');
  });

  it('prefers an address range of four over the /8', async () => {
    assert.equal(await bannerFrom('127.0.0.9'), 'range');
  });

  it('falls back to the /8 for other loopback clients', async () => {
    assert.equal(await bannerFrom('127.0.0.1'), 'loopback');
  });
});

describe('a binding whose connectors do not cover the client', () => {
  let h: ReceiveHarness;
  before(async () => {
    h = await startReceiveHarness([connector({ name: 'Partner', remoteRanges: ['192.0.2.0/24'] })]);
  });
  after(() => h.close());

  it('answers 554 5.7.1 and closes', async () => {
    const c = await SmtpTestClient.connect(h.port());
    const r = await c.greeting();
    assert.equal(r.code, 554);
    assert.match(r.text, /^5\.7\.1 .*no connector accepts connections from 127\.0\.0\.1/);
    await c.closed();
  });
});
