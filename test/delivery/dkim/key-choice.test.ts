import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { DkimSigner } from '../../../src/delivery/dkim/signer.ts';
import { tempDir } from './temp-dir.ts';

function message(headers: string[], body = 'Hello\r\n'): Buffer {
  return Buffer.from(`${headers.join('\r\n')}\r\n\r\n${body}`, 'utf8');
}

/** The d= and s= of a DKIM-Signature header. */
function tags(signature: Buffer | undefined): { d?: string; s?: string } {
  assert.ok(signature, 'expected a signature');
  const text = signature.toString('latin1').replace(/\r\n[ \t]+/g, ' ');
  return { d: /[; ]d=([^;\s]+)/.exec(text)?.[1], s: /[; ]s=([^;\s]+)/.exec(text)?.[1] };
}

/**
 * The key follows the domain of the RFC 5322 From: (the DMARC identity): the domain's own key,
 * else the key of its closest parent domain, else none; a message without one usable From: is
 * left unsigned, and that is logged.
 */
describe('DKIM key choice by From: domain', () => {
  let remove: () => Promise<void>;
  let signer: DkimSigner;
  const logged: Array<{ level: number; msg: string; problem?: string }> = [];

  before(async () => {
    const dir = await tempDir('ferrymail-dkim-choice-');
    remove = dir.remove;
    const keys = [];
    for (const [domain, selector] of [
      ['example.test', 'top'],
      ['b.example.test', 'sub'],
      ['other.test', 'other'],
      ['example.test', 'second'],
    ] as const) {
      const file = join(dir.path, `${domain}.${selector}.key`);
      const { privateKey } = generateKeyPairSync('ed25519');
      await writeFile(file, privateKey.export({ type: 'pkcs8', format: 'pem' }));
      keys.push({ domain, selector, privateKeyFile: file });
    }
    const logger = pino({ level: 'debug' }, { write: (line: string) => void logged.push(JSON.parse(line)) });
    signer = await DkimSigner.load(keys, { logger });
  });
  after(() => remove());

  const sign = (headers: string[]) => signer.signatureFor(() => Readable.from([message(headers)]));

  it('signs with the key of the From: domain itself, with d= that domain', async () => {
    assert.deepEqual(tags(await sign(['From: a@other.test', 'To: b@x.test'])), {
      d: 'other.test',
      s: 'other',
    });
    assert.deepEqual(tags(await sign(['From: Alice <alice@b.example.test>'])), {
      d: 'b.example.test',
      s: 'sub',
    });
  });

  it('uses the first key listed when a domain has two', async () => {
    assert.deepEqual(tags(await sign(['From: alice@example.test'])), { d: 'example.test', s: 'top' });
  });

  it('signs a subdomain with the closest parent domain key, d= the parent', async () => {
    assert.deepEqual(tags(await sign(['From: x@a.b.example.test'])), { d: 'b.example.test', s: 'sub' });
    assert.deepEqual(tags(await sign(['From: x@deep.a.example.test'])), { d: 'example.test', s: 'top' });
  });

  it('matches the From: domain without regard to case, and reads it past display names and comments', async () => {
    assert.deepEqual(tags(await sign(['From: X@Other.TEST'])), { d: 'other.test', s: 'other' });
    assert.deepEqual(tags(await sign(['From: "Doe, <John>" (x@evil.test) <john@other.test> (comment)'])), {
      d: 'other.test',
      s: 'other',
    });
    assert.deepEqual(tags(await sign(['From: Team:', ' a@other.test, b@OTHER.test;'])), {
      d: 'other.test',
      s: 'other',
    });
  });

  it('does not sign for a domain no key covers, nor one that only ends in the same letters', async () => {
    assert.equal(await sign(['From: a@elsewhere.test']), undefined);
    assert.equal(await sign(['From: a@badexample.test']), undefined);
    assert.equal(await sign(['From: a@test']), undefined);
  });

  it('does not sign, and logs why, a message without exactly one usable From:', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['To: b@other.test', 'Subject: no author'], /no From/],
      [['From: a@other.test', 'From: b@other.test'], /2 From/],
      [['From: a@other.test, b@example.test'], /several domains/],
      [['From: undisclosed'], /without a domain/],
      [['From: a@other.test', 'this line is no header'], /malformed header line/],
      [[' continuation first', 'From: a@other.test'], /continuation/],
      [['From: a@[192.0.2.1]'], /not a DNS name/],
    ];
    for (const [headers, problem] of cases) {
      logged.length = 0;
      assert.equal(await sign(headers), undefined, headers.join(' | '));
      const warning = logged.find((l) => l.level === 40);
      assert.ok(warning, `a warning for ${headers.join(' | ')}`);
      assert.match(warning.problem ?? '', problem);
    }
  });

  it('reads the From: of a message whose header section arrives split across many chunks', async () => {
    const bytes = message(['Subject: chunked', 'From: someone@a.other.test'], 'body\r\n');
    const chunks = [...bytes].map((b) => Buffer.from([b]));
    assert.deepEqual(tags(await signer.signatureFor(() => Readable.from(chunks))), {
      d: 'other.test',
      s: 'other',
    });
  });

  it('a signer without keys signs nothing and does not open the message', async () => {
    const none = await DkimSigner.load([]);
    let opened = false;
    const r = await none.signatureFor(() => {
      opened = true;
      return Readable.from([message(['From: a@other.test'])]);
    });
    assert.equal(r, undefined);
    assert.equal(opened, false);
  });
});
