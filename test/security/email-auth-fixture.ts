import { generateKeyPairSync } from 'node:crypto';
import { dkimSign, sealMessage } from 'mailauth';
import { emailAuthenticationSchema } from '../../src/agents/email-auth/config.ts';
import {
  type AuthSubject,
  type AuthVerdict,
  EmailAuthenticator,
} from '../../src/agents/email-auth/verifier.ts';
import { receiveConnectorSchema } from '../../src/config/schema.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { createResolver } from '../../src/routing/dns/resolver.ts';
import type { TestDnsServer, ZoneEntry } from '../helpers/dns-server.ts';

/** Shared pieces of the email-authentication specifications: keys, signing, sealing, a verifier on a real DNS server. */

export interface TestKey {
  readonly privateKey: string;
  /** The `selector._domainkey` TXT record, split into character-strings of at most 255 bytes. */
  readonly record: string[];
}

export function dkimKey(): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const p = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  const text = `v=DKIM1; k=rsa; p=${p}`;
  const record: string[] = [];
  for (let i = 0; i < text.length; i += 255) record.push(text.slice(i, i + 255));
  return { privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), record };
}

export function keyEntry(key: TestKey): ZoneEntry {
  return { TXT: [key.record] };
}

/** A plain message with CRLF line endings. */
export function message(fields: {
  from: string;
  subject?: string;
  body?: string;
  extraHeaders?: string[];
}): Buffer {
  const lines = [
    ...(fields.extraHeaders ?? []),
    `From: Sender <${fields.from}>`,
    'To: alice@example.test',
    `Subject: ${fields.subject ?? 'Test message'}`,
    'Date: Tue, 01 Dec 2026 08:00:00 +0000',
    `Message-ID: <${Math.random().toString(36).slice(2)}@test>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    fields.body ?? 'Hello.\r\nThis is the body.',
    '',
  ];
  return Buffer.from(lines.join('\r\n'));
}

export async function sign(msg: Buffer, d: string, selector: string, key: TestKey): Promise<Buffer> {
  const signature = { signingDomain: d, selector, privateKey: key.privateKey };
  const result = await dkimSign(msg, {
    ...signature,
    signatureData: [signature],
    canonicalization: 'relaxed/relaxed',
  });
  if (result.signatures === '') throw new Error(`not signed: ${JSON.stringify(result.errors)}`);
  return Buffer.concat([Buffer.from(result.signatures), msg]);
}

/** Adds one ARC set, as a forwarder with this key would. */
export async function seal(
  msg: Buffer,
  d: string,
  selector: string,
  key: TestKey,
  cv: 'none' | 'pass' | 'fail',
  authResults: string,
): Promise<Buffer> {
  const headers = await sealMessage(msg, {
    signingDomain: d,
    selector,
    privateKey: key.privateKey,
    cv,
    authResults,
  });
  if (headers.length === 0) throw new Error('not sealed');
  return Buffer.concat([headers, msg]);
}

export const CONNECTOR = receiveConnectorSchema.parse({
  name: 'Default',
  bindings: ['127.0.0.1:0'],
  permissionGroups: { anonymous: ['submit'] },
});

export function subject(overrides: Partial<AuthSubject> = {}): AuthSubject {
  return {
    sessionId: 'test',
    connector: CONNECTOR,
    remoteIp: '192.0.2.10',
    helo: 'mta.sender.example',
    sender: 'someone@sender.example',
    authUser: undefined,
    permissions: new Set(['submit']),
    ...overrides,
  };
}

export function authenticator(dns: TestDnsServer, config: Record<string, unknown> = {}): EmailAuthenticator {
  return new EmailAuthenticator({
    config: emailAuthenticationSchema.parse(config),
    dns: createResolver({ servers: [dns.server], timeout: 300, tries: 1 }),
    authservId: 'mx.example.test',
    logger: silentLogger,
  });
}

/** Streams the message through a verification in small chunks, as a session would. */
export async function verify(
  auth: EmailAuthenticator,
  msg: Buffer,
  who: Partial<AuthSubject> = {},
): Promise<AuthVerdict> {
  const v = auth.begin(subject(who));
  if (!v) throw new Error('this subject is not checked');
  for (let i = 0; i < msg.length; i += 100) await v.write(msg.subarray(i, i + 100));
  return v.finish();
}

/** The Authentication-Results header of a verdict, unfolded. */
export function arHeader(verdict: AuthVerdict): string {
  const header = verdict.headers.find((h) => h.startsWith('Authentication-Results:'));
  if (!header) throw new Error('no Authentication-Results header');
  return header.replace(/\r\n[ \t]+/g, ' ');
}
