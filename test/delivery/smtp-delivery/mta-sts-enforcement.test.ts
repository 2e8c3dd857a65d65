import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { configSchema } from '../../../src/config/schema.ts';
import { silentLogger } from '../../../src/core/logger.ts';
import { openSmtpConnection, type SmtpClientOptions } from '../../../src/delivery/smtp/client/index.ts';
import { type MxPolicy, SmtpDeliveryAgent } from '../../../src/delivery/smtp/smtp-agent.ts';
import type { AttemptResult } from '../../../src/delivery/types.ts';
import type { DeliveryJob } from '../../../src/queue/types.ts';
import { createResolver } from '../../../src/routing/dns/resolver.ts';
import { SendConnectorSelector } from '../../../src/routing/send-connectors.ts';
import { startDnsServer, type TestDnsServer } from '../../helpers/dns-server.ts';
import { SmtpSink } from '../../helpers/smtp-sink.ts';
import { testPki } from '../smtp-client/fixtures.ts';

/**
 * Under an MTA-STS policy in enforce mode (RFC 8461 §5), the SMTP agent uses only the MX hosts
 * the policy names, insists on TLS with a certificate valid for the MX name (no plaintext
 * fallback, no unverified TLS), and defers — never bounces — when the policy leaves no MX host
 * or the certificate does not pass. In testing mode nothing is restricted.
 */
describe('MTA-STS enforcement in the SMTP agent', () => {
  let dns: TestDnsServer;
  let tlsSink: SmtpSink;
  let plainSink: SmtpSink;
  let ca: string;

  before(async () => {
    const pki = await testPki();
    ca = pki.ca;
    tlsSink = await SmtpSink.start({ hostname: 'mx.example.test', tls: pki.leaf });
    plainSink = await SmtpSink.start({ hostname: 'mx.example.test' });
    dns = await startDnsServer({
      'sts.test': {
        MX: [
          { preference: 10, exchange: 'rogue.attacker.test' },
          { preference: 20, exchange: 'mx.example.test' },
        ],
      },
      'rogue.attacker.test': { A: ['127.0.0.1'] },
      'mx.example.test': { A: ['127.0.0.1'] },
    });
  });
  after(async () => {
    await tlsSink.close();
    await plainSink.close();
    await dns.close();
  });

  function job(address: string): DeliveryJob {
    const recipient = {
      address,
      nextHop: { type: 'smtp' as const, domain: 'sts.test', connector: 'Internet' },
      index: 0,
      status: 'active' as const,
      attempts: 0,
      nextAttemptAt: 0,
      updatedAt: 0,
    };
    return {
      message: {
        id: 'TESTMESSAGE',
        sender: 'app@example.test',
        recipients: [recipient],
        dsn: {},
        bodyType: '7BIT',
        smtpUtf8: false,
        origin: { connector: 'Relay', clientIp: '127.0.0.1', clientHelo: 'c', tls: false },
        receivedAt: 0,
        expiresAt: Number.MAX_SAFE_INTEGER,
        size: 40,
      },
      recipients: [recipient],
    };
  }

  /** An agent whose connections go to `sink` whatever the MX address, recording what it was asked to open. */
  function agent(sink: SmtpSink, policy: MxPolicy | undefined) {
    const opened: SmtpClientOptions[] = [];
    const selector = new SendConnectorSelector(
      configSchema.parse({ sendConnectors: [{ name: 'Internet', addressSpaces: ['*'] }] }).sendConnectors,
    );
    const a = new SmtpDeliveryAgent({
      selector,
      resolver: createResolver({ servers: [dns.server], timeout: 1000, tries: 1 }),
      allowPrivateAddresses: true,
      nodeFqdn: 'relay.example.test',
      logger: silentLogger,
      maxOutboundConnections: 10,
      passwordFor: () => undefined,
      caFor: () => Buffer.from(ca),
      mxPolicy: async () => policy,
      connect: (options) => {
        opened.push(options);
        return openSmtpConnection({ ...options, port: sink.port });
      },
    });
    return { agent: a, opened };
  }

  const body = () => Readable.from([Buffer.from('Subject: sts\r\n\r\nbody\r\n')]);

  async function deliver(a: SmtpDeliveryAgent): Promise<AttemptResult> {
    const results = await a.deliver(job('x@sts.test'), body);
    await a.close();
    return results.get(0)!;
  }

  it('uses only the MX hosts the policy names, with TLS verified against the MX name', async () => {
    const { agent: a, opened } = agent(tlsSink, {
      allowed: ['mx.example.test'],
      requireTls: true,
      report: 'enforce',
    });
    const before = tlsSink.transactions.length;
    const result = await deliver(a);
    assert.equal(result.kind, 'delivered', result.response);
    assert.deepEqual(
      opened.map((o) => o.host),
      ['mx.example.test'],
      'the MX host outside the policy was never contacted',
    );
    assert.equal(opened[0]!.tls.mode, 'required');
    assert.equal(opened[0]!.tls.verify, 'domain');
    assert.deepEqual(opened[0]!.tls.matchNames, ['mx.example.test']);
    assert.equal(tlsSink.transactions.length, before + 1);
    assert.equal(tlsSink.transactions.at(-1)!.tls, true);
  });

  it('defers, without sending, when the policy host offers no TLS', async () => {
    const { agent: a } = agent(plainSink, {
      allowed: ['mx.example.test'],
      requireTls: true,
      report: 'enforce',
    });
    const before = plainSink.transactions.length;
    const result = await deliver(a);
    assert.equal(result.kind, 'transient');
    assert.match(result.response, /4\.7\.\d/);
    assert.equal(plainSink.transactions.length, before, 'no plaintext fallback');
  });

  it('defers when the policy leaves no MX host, saying why', async () => {
    const { agent: a, opened } = agent(tlsSink, {
      allowed: [],
      requireTls: true,
      report: 'MTA-STS policy id 1 mode enforce: no MX host allowed',
    });
    const result = await deliver(a);
    assert.equal(result.kind, 'transient', 'RFC 8461: never bounce on a policy mismatch');
    assert.match(result.response, /^451 4\.7\.5 .*no MX host allowed/);
    assert.equal(opened.length, 0);
  });

  it('restricts nothing without a policy: the preferred MX is used and TLS stays opportunistic', async () => {
    const { agent: a, opened } = agent(plainSink, undefined);
    const result = await deliver(a);
    assert.equal(result.kind, 'delivered', result.response);
    assert.equal(opened[0]!.host, 'rogue.attacker.test');
    assert.equal(opened[0]!.tls.mode, 'opportunistic');
  });
});
