import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import * as packet from 'dns-packet';
import { startDnsServer, type TestDnsServer } from '../../helpers/dns-server.ts';

/** One raw UDP query, as a DANE-capable stub resolver would send it. */
async function queryUdp(port: number, name: string, type: packet.RecordType): Promise<packet.DecodedPacket> {
  const socket = createSocket('udp4');
  try {
    const reply = new Promise<Buffer>((resolve) => socket.once('message', resolve));
    socket.send(
      packet.encode({
        type: 'query',
        id: 4242,
        flags: packet.RECURSION_DESIRED,
        questions: [{ type, name }],
      }),
      port,
      '127.0.0.1',
    );
    return packet.decode(await reply);
  } finally {
    socket.close();
  }
}

function addressesIn(reply: packet.DecodedPacket): string[] {
  return (reply.answers ?? []).flatMap((a) => (a.type === 'A' ? [a.data] : []));
}

async function queryTcp(port: number, name: string, type: packet.RecordType): Promise<packet.DecodedPacket> {
  const socket = connect(port, '127.0.0.1');
  try {
    socket.write(packet.streamEncode({ type: 'query', id: 7, questions: [{ type, name }] }));
    let received = Buffer.alloc(0);
    for await (const chunk of socket) {
      received = Buffer.concat([received, chunk as Buffer]);
      if (received.length >= 2 && received.length >= 2 + received.readUInt16BE(0)) break;
    }
    return packet.decode(received.subarray(2));
  } finally {
    socket.destroy();
  }
}

describe('the loopback DNS server used by routing tests', () => {
  let dns: TestDnsServer;

  before(async () => {
    dns = await startDnsServer(
      {
        'signed.test': { A: ['192.0.2.1'] },
        'unsigned.test': { A: ['192.0.2.2'], authenticated: false },
        '_25._tcp.mx.signed.test': {
          TLSA: [{ usage: 3, selector: 1, matchingType: 1, certificate: Buffer.alloc(32, 1) }],
        },
      },
      { authenticated: true },
    );
  });
  after(() => dns.close());

  it('listens on an ephemeral loopback port', () => {
    assert.equal(dns.address, '127.0.0.1');
    assert.ok(dns.port > 0);
    assert.equal(dns.server, `127.0.0.1:${dns.port}`);
  });

  it('sets the AD bit when asked to, per server and per name', async () => {
    const signed = await queryUdp(dns.port, 'signed.test', 'A');
    assert.equal(signed.flag_ad, true);
    assert.equal(signed.id, 4242);
    assert.deepEqual(addressesIn(signed), ['192.0.2.1']);
    const unsigned = await queryUdp(dns.port, 'unsigned.test', 'A');
    assert.equal(unsigned.flag_ad, false);
  });

  it('answers TLSA queries over TCP as well as UDP', async () => {
    const reply = await queryTcp(dns.port, '_25._tcp.mx.signed.test', 'TLSA');
    assert.equal(reply.flag_ad, true);
    const [answer] = reply.answers ?? [];
    assert.equal(answer?.type, 'TLSA');
    assert.deepEqual(answer?.type === 'TLSA' ? answer.data.certificate : undefined, Buffer.alloc(32, 1));
  });

  it('answers NXDOMAIN for names outside the zone, and follows zone replacement', async () => {
    const missing = await queryUdp(dns.port, 'later.test', 'A');
    assert.equal((missing as { rcode?: string }).rcode, 'NXDOMAIN');
    dns.set({ 'later.test': { A: ['192.0.2.3'] } });
    const present = await queryUdp(dns.port, 'later.test', 'A');
    assert.deepEqual(addressesIn(present), ['192.0.2.3']);
  });

  it('records every query with its name, type and transport', () => {
    assert.deepEqual(
      dns.queries.filter((q) => q.name === 'later.test'),
      [
        { name: 'later.test', type: 'A', transport: 'udp' },
        { name: 'later.test', type: 'A', transport: 'udp' },
      ],
    );
    assert.ok(dns.queries.some((q) => q.type === 'TLSA' && q.transport === 'tcp'));
  });
});
