import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import * as packet from 'dns-packet';

/**
 * A real authoritative DNS server on 127.0.0.1 for tests. It answers over UDP and over TCP on the
 * same port (resolvers retry truncated answers over TCP on the port they used for UDP), from a
 * zone table the test gives and may replace at any time.
 */

export interface TlsaTestRecord {
  usage: number;
  selector: number;
  matchingType: number;
  certificate: Buffer;
}

export interface ZoneEntry {
  MX?: Array<{ preference: number; exchange: string }>;
  A?: string[];
  AAAA?: string[];
  /** Each record is one string or its character-strings. */
  TXT?: Array<string | string[]>;
  /** The name is an alias; the target's records are added to the answer when the zone has them. */
  CNAME?: string;
  TLSA?: TlsaTestRecord[];
  /** Answer every query for this name with this response code instead of records. */
  rcode?: 'NXDOMAIN' | 'SERVFAIL' | 'REFUSED';
  /** Never answer: the query just times out. */
  timeout?: boolean;
  /** Fail only queries of these types (broken servers often mishandle AAAA alone). */
  failTypes?: Partial<
    Record<'MX' | 'A' | 'AAAA' | 'TXT' | 'TLSA' | 'CNAME', 'SERVFAIL' | 'REFUSED' | 'timeout'>
  >;
  /** Answer with these bytes instead of a well-formed response (garbage, truncated packets…). */
  raw?: (query: Buffer) => Buffer;
  /** Overrides the server's `authenticated` option for this name. */
  authenticated?: boolean;
  ttl?: number;
}

/** Names are matched case-insensitively, with or without a trailing dot. Names absent are NXDOMAIN. */
export type Zone = Record<string, ZoneEntry>;

export interface DnsServerOptions {
  /** Sets the AD (authenticated data) bit on every answer, as a validating resolver would. */
  authenticated?: boolean;
}

export interface ReceivedQuery {
  name: string;
  type: string;
  transport: 'udp' | 'tcp';
}

export interface TestDnsServer {
  readonly address: string;
  readonly port: number;
  /** 'address:port', the form resolvers' setServers accepts. */
  readonly server: string;
  readonly queries: ReceivedQuery[];
  set(zone: Zone): void;
  close(): Promise<void>;
}

const RCODES = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;
const PLAIN_UDP_LIMIT = 512;
const MAX_CNAME_CHAIN = 8;

function normalizeName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

function normalizeZone(zone: Zone): Map<string, ZoneEntry> {
  return new Map(Object.entries(zone).map(([name, entry]) => [normalizeName(name), entry]));
}

function recordsOf(name: string, type: string, entry: ZoneEntry): packet.Answer[] {
  const ttl = entry.ttl ?? 0;
  switch (type) {
    case 'MX':
      return (entry.MX ?? []).map((mx) => ({
        type: 'MX',
        name,
        ttl,
        data: { preference: mx.preference, exchange: mx.exchange === '.' ? '' : mx.exchange },
      }));
    case 'A':
      return (entry.A ?? []).map((data) => ({ type: 'A', name, ttl, data }));
    case 'AAAA':
      return (entry.AAAA ?? []).map((data) => ({ type: 'AAAA', name, ttl, data }));
    case 'TXT':
      return (entry.TXT ?? []).map((data) => ({ type: 'TXT', name, ttl, data }));
    case 'TLSA':
      return (entry.TLSA ?? []).map((data) => ({ type: 'TLSA', name, ttl, data }));
    case 'CNAME':
      return entry.CNAME === undefined ? [] : [{ type: 'CNAME', name, ttl, data: entry.CNAME }];
    default:
      return [];
  }
}

interface Resolution {
  rcode: number;
  answers: packet.Answer[];
  authenticated: boolean | undefined;
}

/** What an authoritative server for the whole zone says, following aliases inside the zone. */
function resolveInZone(zone: Map<string, ZoneEntry>, question: packet.Question): Resolution {
  const answers: packet.Answer[] = [];
  let name = question.name;
  for (let hop = 0; hop <= MAX_CNAME_CHAIN; hop++) {
    const entry = zone.get(normalizeName(name));
    if (entry === undefined)
      return { rcode: hop === 0 ? RCODES.NXDOMAIN : RCODES.NOERROR, answers, authenticated: undefined };
    if (entry.rcode !== undefined)
      return { rcode: RCODES[entry.rcode], answers: [], authenticated: entry.authenticated };
    if (entry.CNAME !== undefined && question.type !== 'CNAME') {
      answers.push(...recordsOf(name, 'CNAME', entry));
      name = entry.CNAME;
      continue;
    }
    answers.push(...recordsOf(name, question.type, entry));
    return { rcode: RCODES.NOERROR, answers, authenticated: entry.authenticated };
  }
  return { rcode: RCODES.SERVFAIL, answers: [], authenticated: undefined };
}

export async function startDnsServer(
  initialZone: Zone,
  options: DnsServerOptions = {},
): Promise<TestDnsServer> {
  let zone = normalizeZone(initialZone);
  const queries: ReceivedQuery[] = [];

  /** Returns undefined when the query must go unanswered. */
  const answer = (query: Buffer, transport: 'udp' | 'tcp'): Buffer | undefined => {
    let decoded: packet.DecodedPacket;
    try {
      decoded = packet.decode(query);
    } catch {
      return undefined;
    }
    const question = decoded.questions?.[0];
    if (question === undefined) return undefined;
    queries.push({ name: normalizeName(question.name), type: question.type, transport });

    const entry = zone.get(normalizeName(question.name));
    const typeFailure = entry?.failTypes?.[question.type as keyof NonNullable<ZoneEntry['failTypes']>];
    if (entry?.timeout || typeFailure === 'timeout') return undefined;
    if (entry?.raw) return entry.raw(query);

    const resolution =
      typeFailure === undefined
        ? resolveInZone(zone, question)
        : { rcode: RCODES[typeFailure], answers: [], authenticated: entry?.authenticated };
    const edns = decoded.additionals?.find((a) => a.type === 'OPT');
    const authenticated = resolution.authenticated ?? options.authenticated ?? false;
    const recursionDesired = (decoded.flags ?? 0) & packet.RECURSION_DESIRED;
    const response: packet.Packet = {
      type: 'response',
      id: decoded.id ?? 0,
      flags:
        packet.AUTHORITATIVE_ANSWER |
        recursionDesired |
        packet.RECURSION_AVAILABLE |
        (authenticated ? packet.AUTHENTIC_DATA : 0) |
        resolution.rcode,
      questions: [question],
      answers: resolution.answers,
      additionals: edns
        ? [
            {
              type: 'OPT',
              name: '.',
              udpPayloadSize: 1232,
              extendedRcode: 0,
              ednsVersion: 0,
              flags: 0,
              flag_do: false,
              options: [],
            },
          ]
        : [],
    };
    const encoded = packet.encode(response);
    const limit =
      edns && 'udpPayloadSize' in edns ? Math.max(edns.udpPayloadSize, PLAIN_UDP_LIMIT) : PLAIN_UDP_LIMIT;
    if (transport === 'tcp' || encoded.length <= limit) return encoded;
    return packet.encode({
      ...response,
      flags: (response.flags ?? 0) | packet.TRUNCATED_RESPONSE,
      answers: [],
    });
  };

  const onDatagram = (udp: UdpSocket) => (message: Buffer, remote: RemoteInfo) => {
    const reply = answer(message, 'udp');
    if (reply !== undefined) udp.send(reply, remote.port, remote.address);
  };

  const tcpSockets = new Set<Socket>();
  const tcp = createServer((socket) => {
    tcpSockets.add(socket);
    socket.on('close', () => tcpSockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2) {
        const length = pending.readUInt16BE(0);
        if (pending.length < 2 + length) break;
        const reply = answer(pending.subarray(2, 2 + length), 'tcp');
        pending = pending.subarray(2 + length);
        if (reply === undefined) continue;
        const prefix = Buffer.alloc(2);
        prefix.writeUInt16BE(reply.length);
        socket.write(Buffer.concat([prefix, reply]));
      }
    });
  });

  const { udp, port } = await bindSamePort(onDatagram, tcp);

  return {
    address: '127.0.0.1',
    port,
    server: `127.0.0.1:${port}`,
    queries,
    set(next: Zone) {
      zone = normalizeZone(next);
    },
    async close() {
      for (const socket of tcpSockets) socket.destroy();
      await Promise.all([
        new Promise<void>((resolve) => udp.close(() => resolve())),
        new Promise<void>((resolve) => tcp.close(() => resolve())),
      ]);
    },
  };
}

/** UDP takes an ephemeral port; TCP must then get the same one, which another process may hold. */
async function bindSamePort(
  onDatagram: (udp: UdpSocket) => (message: Buffer, remote: RemoteInfo) => void,
  tcp: Server,
): Promise<{ udp: UdpSocket; port: number }> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const udp = createSocket('udp4');
    udp.on('message', onDatagram(udp));
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(0, '127.0.0.1', () => {
        udp.off('error', reject);
        resolve();
      });
    });
    const port = udp.address().port;
    const listening = await new Promise<boolean>((resolve) => {
      const onError = () => resolve(false);
      tcp.once('error', onError);
      tcp.listen(port, '127.0.0.1', () => {
        tcp.off('error', onError);
        resolve(true);
      });
    });
    if (listening) return { udp, port };
    await new Promise<void>((resolve) => udp.close(() => resolve()));
  }
  throw new Error('test DNS server: no port free for both UDP and TCP');
}
