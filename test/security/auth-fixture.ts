import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hashPassword } from '../../src/directory/password.ts';
import { cramMd5Secret } from '../../src/receive/auth/cram-md5.ts';
import {
  makeTempDir,
  newMessages,
  removeDir,
  startTestNode,
  type TestNode,
} from '../helpers/node-fixture.ts';
import { type ClientCertificate, SmtpTestClient, type TestReply } from '../helpers/smtp-client.ts';

/**
 * A whole node (real config loading, directory, queue and Maildir) for the receive-side security
 * tests: example.test with alice (proxy a.smith@), bob and carol, all with the password
 * TEST_PASSWORD; alice also has a CRAM-MD5 secret. Each test file adds its own connectors.
 */

export const TEST_PASSWORD = 'test-password';
export const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
export const plain = (user: string, password = TEST_PASSWORD) =>
  `AUTH PLAIN ${b64(`\0${user}\0${password}`)}`;

export interface SecurityNode extends TestNode {
  /** Messages in the queue (each one was acknowledged with 250). */
  queued(): Promise<
    Array<{ sender: string; recipients: string[]; authUser: string | undefined; subject: string | undefined }>
  >;
  /**
   * Where a message with this Subject is now: queue entries (envelope sender) and Maildir files
   * (the Return-Path sender), so that a delivery racing the check cannot hide a stored message.
   */
  stored(subject: string): Promise<Array<{ where: string; sender: string }>>;
  /** Waits until `count` messages with this Subject are stored somewhere, then returns them all. */
  waitStored(subject: string, count: number): Promise<Array<{ where: string; sender: string }>>;
  /** Stops the node and removes its folder. */
  close(): Promise<void>;
}

export async function startSecurityNode(
  connectors: unknown[],
  extra: {
    mailboxes?: Array<{ address: string } & Record<string, unknown>>;
    top?: Record<string, unknown>;
    files?: Record<string, string>;
  } = {},
): Promise<SecurityNode> {
  const dir = await makeTempDir('ferrymail-security-');
  for (const [name, text] of Object.entries(extra.files ?? {})) await writeFile(join(dir, name), text);
  const passwordHash = await hashPassword(TEST_PASSWORD);
  const config = {
    node: { name: 'test', fqdn: 'mx.example.test', dataDir: join(dir, 'data'), logLevel: 'silent' },
    acceptedDomains: [{ name: 'example.test', type: 'authoritative', default: true }],
    mailboxes: [
      {
        address: 'alice@example.test',
        passwordHash,
        cramMd5Secret: cramMd5Secret(TEST_PASSWORD),
        aliases: ['a.smith@example.test'],
      },
      { address: 'bob@example.test', passwordHash },
      { address: 'carol@example.test', passwordHash },
      ...(extra.mailboxes ?? []).map((m) => ({ passwordHash, ...m })),
    ],
    aliases: [{ address: 'postmaster@example.test', target: 'alice@example.test' }],
    receiveConnectors: connectors,
    // Generous, so that the failures some tests provoke on purpose never lock the others out.
    authLockout: { perIp: { failures: 1000 }, perAccount: { failures: 1000 } },
    ...extra.top,
  };
  let node: TestNode;
  try {
    node = await startTestNode({ dir, config });
  } catch (error) {
    await removeDir(dir);
    throw error;
  }
  const secured: SecurityNode = {
    ...node,
    async queued() {
      return (await node.node.store.listMessages()).map((m) => ({
        sender: m.sender,
        recipients: m.recipients.map((r) => r.address),
        authUser: m.origin.authUser,
        subject: m.subject,
      }));
    },
    async stored(subject) {
      const out: Array<{ where: string; sender: string }> = [];
      // Maildir first: a message delivered between the two reads is then still seen once.
      for (const m of config.mailboxes) {
        const maildir = node.mailbox(m.address);
        for (const name of await newMessages(maildir)) {
          const text = await readFile(join(maildir, 'new', name), 'latin1');
          if (!text.split(/\r?\n/).includes(`Subject: ${subject}`)) continue;
          out.push({ where: m.address, sender: /^Return-Path: <([^>]*)>/m.exec(text)?.[1] ?? '?' });
        }
      }
      // Per recipient, so that one caught between its Maildir write and its queue update counts once.
      for (const m of await node.node.store.listMessages()) {
        if (m.subject !== subject) continue;
        for (const r of m.recipients) {
          const seen = out.some((o) => o.where === r.address && o.sender === m.sender);
          if (!seen)
            out.push({ where: r.nextHop.type === 'mailbox' ? r.address : 'queue', sender: m.sender });
        }
      }
      return out;
    },
    async waitStored(subject, count) {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const found = await secured.stored(subject);
        if (found.length >= count || Date.now() > deadline) return found;
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async close() {
      await node.stop();
      await removeDir(dir);
    },
  };
  return secured;
}

/** Connects, reads the greeting and says EHLO; returns the client and the EHLO reply. */
export async function hello(
  port: number,
  options: { tls?: boolean; clientCertificate?: ClientCertificate } = {},
): Promise<{ c: SmtpTestClient; ehlo: TestReply }> {
  const c = await SmtpTestClient.connect(port, options);
  await c.greeting();
  const ehlo = await c.command('EHLO client.test');
  return { c, ehlo };
}

/** The mechanisms an EHLO reply offers (empty when AUTH is not offered). */
export function offered(ehlo: TestReply): string[] {
  const line = ehlo.lines.find((l) => l.startsWith('AUTH '));
  return line ? line.slice(5).split(' ') : [];
}

/**
 * One message from MAIL to the end of data; resolves with the first reply that is not a 2xx/3xx
 * (with the step it came at), or with the final 250.
 */
export async function send(
  c: SmtpTestClient,
  message: { from: string; to: string[]; headers?: string; body?: string },
): Promise<{ step: 'mail' | 'rcpt' | 'data' | 'end'; reply: TestReply }> {
  const mail = await c.command(`MAIL FROM:<${message.from}>`);
  if (mail.code !== 250) return { step: 'mail', reply: mail };
  for (const to of message.to) {
    const rcpt = await c.command(`RCPT TO:<${to}>`);
    if (rcpt.code !== 250) {
      await c.command('RSET');
      return { step: 'rcpt', reply: rcpt };
    }
  }
  const data = await c.command('DATA');
  if (data.code !== 354) return { step: 'data', reply: data };
  const headers = message.headers ?? `From: <${message.from}>\r\nTo: <${message.to[0]}>\r\nSubject: test\r\n`;
  const end = await c.command(`${headers}\r\n${message.body ?? 'Hello.'}\r\n.`);
  return { step: 'end', reply: end };
}
