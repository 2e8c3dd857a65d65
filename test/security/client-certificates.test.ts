import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generate } from 'selfsigned';
import type { ClientCertificate } from '../helpers/smtp-client.ts';
import { hello, type SecurityNode, send, startSecurityNode } from './auth-fixture.ts';

interface Pki {
  ca: string;
  partner: ClientCertificate;
  server: ClientCertificate;
  unmapped: ClientCertificate;
  expired: ClientCertificate;
  foreign: ClientCertificate;
  selfSigned: ClientCertificate;
}

const HOUR = 3_600_000;

async function makeCa(name: string) {
  return generate([{ name: 'commonName', value: name }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notBeforeDate: new Date(Date.now() - HOUR),
    notAfterDate: new Date(Date.now() + 24 * HOUR),
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
}

async function leaf(
  ca: { cert: string; private: string } | undefined,
  cn: string,
  options: { notAfter?: number } = {},
): Promise<ClientCertificate> {
  const pems = await generate([{ name: 'commonName', value: cn }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notBeforeDate: new Date(Date.now() - 2 * HOUR),
    notAfterDate: new Date(options.notAfter ?? Date.now() + 24 * HOUR),
    ...(ca ? { ca: { key: ca.private, cert: ca.cert } } : {}),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true },
      { name: 'extKeyUsage', clientAuth: true, serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: cn }] },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}

async function makePki(): Promise<Pki> {
  const ca = await makeCa('Ferrymail Partner CA');
  const other = await makeCa('Some Other CA');
  return {
    ca: ca.cert,
    partner: await leaf(ca, 'mx1.partner.test'),
    server: await leaf(ca, 'hub.internal.test'),
    unmapped: await leaf(ca, 'stranger.test'),
    expired: await leaf(ca, 'mx1.partner.test', { notAfter: Date.now() - HOUR }),
    foreign: await leaf(other, 'mx1.partner.test'),
    selfSigned: await leaf(undefined, 'mx1.partner.test'),
  };
}

const OUTSIDE = 'someone@elsewhere.test';

/**
 * Mutual TLS: a client certificate that chains to the connector's CA and matches a map entry
 * grants that entry's permission group (partners, servers); any other certificate, or none, is
 * anonymous. Over real handshakes, STARTTLS and implicit TLS.
 */
describe('client certificates', () => {
  let pki: Pki;
  let n: SecurityNode;
  before(async () => {
    pki = await makePki();
    n = await startSecurityNode(
      [
        {
          name: 'Partner',
          bindings: ['127.0.0.1:0'],
          permissionGroups: { anonymous: ['submit'], partners: ['submit', 'relay'] },
          tls: {
            mode: 'starttls',
            clientCertificates: {
              caFile: 'ca.pem',
              map: [{ match: { san: '*.partner.test' }, group: 'partners' }],
            },
          },
        },
        {
          name: 'Internal',
          bindings: ['127.0.0.1:0'],
          permissionGroups: { servers: ['submit', 'relay'] },
          tls: {
            mode: 'implicit',
            clientCertificates: {
              caFile: 'ca.pem',
              required: true,
              map: [{ match: { subject: 'hub.internal.test', san: 'hub.internal.test' }, group: 'servers' }],
            },
          },
        },
      ],
      { files: { 'ca.pem': pki.ca } },
    );
  });
  after(() => n.close());

  async function partnerSession(certificate?: ClientCertificate) {
    const { c } = await hello(n.port('Partner'));
    assert.equal((await c.startTls(certificate)).code, 220);
    await c.command('EHLO client.test');
    return c;
  }

  it('lets a partner with a certificate from the CA relay, and queues its message', async () => {
    const c = await partnerSession(pki.partner);
    const sent = await send(c, {
      from: 'news@partner.test',
      to: [OUTSIDE],
      headers: 'From: news@partner.test\r\nSubject: partner relay\r\n',
    });
    assert.equal(sent.reply.code, 250, `${sent.step}: ${sent.reply.text}`);
    c.close();
    const queued = (await n.queued()).filter((m) => m.subject === 'partner relay');
    assert.deepEqual(
      queued.map((m) => m.recipients),
      [[OUTSIDE]],
    );
  });

  it('treats a client without a certificate, or with one the CA did not issue, as anonymous', async () => {
    const cases: Array<[string, ClientCertificate | undefined]> = [
      ['no certificate', undefined],
      ['another CA', pki.foreign],
      ['self-signed', pki.selfSigned],
      ['expired', pki.expired],
      ['issued by the CA, but no map entry matches', pki.unmapped],
    ];
    for (const [what, certificate] of cases) {
      const c = await partnerSession(certificate);
      const sent = await send(c, {
        from: 'news@partner.test',
        to: [OUTSIDE],
        headers: `Subject: ${what}\r\n`,
      });
      assert.equal(sent.step, 'rcpt', what);
      assert.equal(sent.reply.code, 550, what);
      assert.equal(sent.reply.text, '5.7.1 Unable to relay', what);
      // Anonymous rights still apply: local delivery works.
      assert.equal(
        (await send(c, { from: 'news@partner.test', to: ['bob@example.test'] })).reply.code,
        250,
        what,
      );
      c.close();
    }
    const queued = await n.queued();
    assert.ok(
      !queued.some((m) => m.recipients.includes(OUTSIDE) && m.subject !== 'partner relay'),
      'relayed without rights',
    );
  });

  it('grants servers over implicit TLS to a certificate matching subject and SAN', async () => {
    const { c } = await hello(n.port('Internal'), { tls: true, clientCertificate: pki.server });
    const sent = await send(c, {
      from: 'daemon@internal.test',
      to: [OUTSIDE],
      headers: 'Subject: from the hub\r\n',
    });
    assert.equal(sent.reply.code, 250, `${sent.step}: ${sent.reply.text}`);
    c.close();
    assert.equal((await n.queued()).filter((m) => m.subject === 'from the hub').length, 1);
  });

  it('refuses MAIL on a connector that requires a certificate when the client has no trusted one', async () => {
    for (const certificate of [undefined, pki.foreign, pki.expired]) {
      const { c } = await hello(n.port('Internal'), {
        tls: true,
        ...(certificate ? { clientCertificate: certificate } : {}),
      });
      const r = await c.command('MAIL FROM:<daemon@internal.test>');
      assert.equal(r.code, 530);
      assert.equal(r.text, '5.7.0 A trusted client certificate is required');
      c.close();
    }
    // A trusted certificate that maps to no group passes `required`, but gets no rights.
    const { c } = await hello(n.port('Internal'), { tls: true, clientCertificate: pki.partner });
    const r = await c.command('MAIL FROM:<daemon@internal.test>');
    assert.equal(r.code, 550);
    assert.match(r.text, /^5\.7\.1 Not permitted/);
    c.close();
  });

  it('refuses to start a node whose CA file is missing or holds no certificate, naming the field', async () => {
    for (const [file, why] of [
      ['missing.pem', /no such file|ENOENT/],
      ['empty.pem', /holds no certificate/],
    ] as const) {
      await assert.rejects(
        startSecurityNode(
          [
            {
              name: 'Partner',
              bindings: ['127.0.0.1:0'],
              permissionGroups: { anonymous: ['submit'], partners: ['relay'] },
              tls: {
                clientCertificates: { caFile: file, map: [{ match: { san: 'a.test' }, group: 'partners' }] },
              },
            },
          ],
          { files: { 'empty.pem': 'not a certificate\n' } },
        ),
        (error: Error) => {
          assert.match(error.message, /receiveConnectors\[0\]\.tls\.clientCertificates\.caFile/);
          assert.match(error.message, why);
          return true;
        },
      );
    }
  });
});
