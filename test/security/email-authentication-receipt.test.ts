import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import {
  demoLikeConfig,
  makeTempDir,
  newMessages,
  removeDir,
  startTestNode,
  type TestNode,
  waitForMessages,
} from '../helpers/node-fixture.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';
import { dkimKey, keyEntry, message, sign } from './email-auth-fixture.ts';

// On a whole node, over SMTP: every checked message is stored with exactly one
// Authentication-Results header of ours on top, before the 250; the DMARC policy is honoured
// as configured (p=reject → 550 5.7.1 and nothing stored; p=quarantine → the junk header); a
// verification problem never loses a message; submission and trusted sessions are not checked.

const key = dkimKey();
const AUTHSERV = 'mx.example.test';
let dns: TestDnsServer;

before(async () => {
  dns = await startDnsServer({
    'good.example': { TXT: ['v=spf1 ip4:127.0.0.1 -all'] },
    's._domainkey.good.example': keyEntry(key),
    '_dmarc.good.example': { TXT: ['v=DMARC1; p=reject'] },
    'spoofed.example': { TXT: ['v=spf1 -all'] },
    '_dmarc.spoofed.example': { TXT: ['v=DMARC1; p=reject'] },
    'junk.example': { TXT: ['v=spf1 -all'] },
    '_dmarc.junk.example': { TXT: ['v=DMARC1; p=quarantine'] },
    'slow.example': { timeout: true },
    '_dmarc.slow.example': { timeout: true },
  });
});
after(() => dns.close());

async function node(emailAuthentication: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  const dir = await makeTempDir();
  const config = {
    ...(await demoLikeConfig(dir)),
    dns: { servers: [dns.server], timeout: '2s', tries: 1 },
    emailAuthentication,
    ...extra,
  };
  const n = await startTestNode({ dir, config });
  return { n, dir, close: async () => (await n.stop(), await removeDir(dir)) };
}

async function send(n: TestNode, sender: string, body: Buffer, options: { bdat?: boolean } = {}) {
  const c = await SmtpTestClient.connect(n.port('Default'));
  try {
    await c.greeting();
    assert.equal((await c.command('EHLO client.good.example')).code, 250);
    assert.equal((await c.command(`MAIL FROM:<${sender}>`)).code, 250);
    assert.equal((await c.command('RCPT TO:<alice@example.test>')).code, 250);
    if (options.bdat)
      return await c.command(`BDAT ${body.length} LAST\r\n${body.toString('latin1')}`.slice(0, -2));
    assert.equal((await c.command('DATA')).code, 354);
    const stuffed = body.toString('latin1').replace(/^\./gm, '..');
    return await c.command(`${stuffed}${stuffed.endsWith('\r\n') ? '' : '\r\n'}.`);
  } finally {
    c.close();
  }
}

/** Maildir stores lines with LF alone: compared here with CRLF, as on the wire. */
function crlf(stored: Buffer): string {
  return stored.toString('latin1').replace(/\r?\n/g, '\r\n');
}

function headerSection(stored: Buffer): string {
  const text = crlf(stored);
  return text.slice(0, text.indexOf('\r\n\r\n') + 2);
}

function fields(stored: Buffer, name: string): string[] {
  const unfolded = headerSection(stored).replace(/\r\n[ \t]+/g, ' ');
  return unfolded.split('\r\n').filter((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
}

function ours(stored: Buffer): string[] {
  return fields(stored, 'Authentication-Results').filter((v) =>
    v.slice('Authentication-Results:'.length).trim().toLowerCase().startsWith(`${AUTHSERV};`),
  );
}

async function signedGood(extraHeaders: string[] = [], body?: string): Promise<Buffer> {
  return sign(
    message({ from: 'a@good.example', extraHeaders, ...(body ? { body } : {}) }),
    'good.example',
    's',
    key,
  );
}

describe('email authentication on receipt', () => {
  let t: Awaited<ReturnType<typeof node>>;
  before(async () => {
    t = await node();
  });
  after(() => t.close());

  test('the stored message carries exactly one Authentication-Results of ours, on top, with every method', async () => {
    const r = await send(t.n, 'b@good.example', await signedGood());
    assert.equal(r.code, 250);
    const [stored] = await waitForMessages(t.n.mailbox('alice@example.test'), 1);
    const mine = ours(stored!);
    assert.equal(mine.length, 1);
    assert.match(mine[0]!, /spf=pass .*dkim=pass .*dmarc=pass .*arc=none/);
    // Above our own Received header: only delivery's Return-Path and Delivered-To come first.
    const names = headerSection(stored!)
      .split('\r\n')
      .filter((l) => /^[^ \t]/.test(l))
      .map((l) => l.slice(0, l.indexOf(':')).toLowerCase());
    assert.deepEqual(names.slice(0, 4), [
      'return-path',
      'delivered-to',
      'authentication-results',
      'received',
    ]);
  });

  test('forged Authentication-Results headers from the client do not add to ours: still exactly one', async () => {
    const forged = [
      `Authentication-Results: ${AUTHSERV}; spf=pass smtp.mailfrom=x@good.example; dkim=pass; dmarc=pass`,
      `Authentication-Results: ${AUTHSERV.toUpperCase()}; dmarc=pass`,
    ];
    const r = await send(
      t.n,
      'b@spoofed.example',
      message({ from: 'a@junk-free.example', extraHeaders: forged }),
    );
    assert.equal(r.code, 250);
    const stored = (await waitForMessages(t.n.mailbox('alice@example.test'), 2)).find((m) =>
      m.toString().includes('junk-free.example'),
    )!;
    const mine = ours(stored);
    assert.equal(mine.length, 1, mine.join('\n'));
    assert.match(mine[0]!, /spf=fail/);
  });

  test('p=reject and DMARC fails: 550 5.7.1 at the end of data, and nothing is stored', async () => {
    const before = (await newMessages(t.n.mailbox('alice@example.test'))).length;
    // Earlier messages finish delivery first, so that the queue is empty before and after.
    for (let i = 0; i < 100; i++) {
      const c = await t.n.node.store.countRecipients();
      if (c.pending + c.active === 0) break;
      await new Promise((res) => setTimeout(res, 20));
    }
    const counts = await t.n.node.store.countRecipients();
    assert.equal(counts.pending + counts.active, 0);
    const r = await send(t.n, 'b@spoofed.example', message({ from: 'ceo@spoofed.example' }));
    assert.equal(r.code, 550);
    assert.match(r.text, /^5\.7\.1 .*DMARC.*spoofed\.example/);
    await new Promise((res) => setTimeout(res, 300));
    assert.equal((await newMessages(t.n.mailbox('alice@example.test'))).length, before);
    assert.deepEqual(await t.n.node.store.countRecipients(), counts);
    assert.deepEqual(await t.n.node.store.listMessages(), []);
  });

  test('p=quarantine and DMARC fails: delivered, with X-Ferrymail-Junk: dmarc-quarantine', async () => {
    const before = (await newMessages(t.n.mailbox('alice@example.test'))).length;
    const r = await send(t.n, 'b@junk.example', message({ from: 'a@junk.example', subject: 'quarantined' }));
    assert.equal(r.code, 250);
    const stored = (await waitForMessages(t.n.mailbox('alice@example.test'), before + 1)).find((m) =>
      m.toString().includes('quarantined'),
    )!;
    assert.deepEqual(fields(stored, 'X-Ferrymail-Junk'), ['X-Ferrymail-Junk: dmarc-quarantine']);
    assert.match(ours(stored)[0]!, /dmarc=fail/);
  });

  test('a message that passes DMARC gets no junk header, even if the client sent one', async () => {
    const before = (await newMessages(t.n.mailbox('alice@example.test'))).length;
    const r = await send(t.n, 'b@good.example', await signedGood(['X-Ferrymail-Junk: nope'], 'clean one'));
    assert.equal(r.code, 250);
    const stored = (await waitForMessages(t.n.mailbox('alice@example.test'), before + 1)).find((m) =>
      m.toString().includes('clean one'),
    )!;
    assert.deepEqual(fields(stored, 'X-Ferrymail-Junk'), []);
  });

  test('a message larger than the inline body limit still gets the header on top', async () => {
    const before = (await newMessages(t.n.mailbox('alice@example.test'))).length;
    const big = `${'x'.repeat(998)}\r\n`.repeat(300);
    const r = await send(t.n, 'b@good.example', await signedGood([], `big one\r\n${big}`));
    assert.equal(r.code, 250);
    const stored = (await waitForMessages(t.n.mailbox('alice@example.test'), before + 1)).find((m) =>
      m.toString().includes('big one'),
    )!;
    assert.ok(stored.length > 300_000);
    const mine = ours(stored);
    assert.equal(mine.length, 1);
    assert.match(mine[0]!, /dkim=pass .*dmarc=pass/);
    assert.ok(crlf(stored).includes(`\r\n\r\nbig one\r\n${big}`), 'body intact after the prefix');
  });

  test('BDAT content is verified the same way', async () => {
    const before = (await newMessages(t.n.mailbox('alice@example.test'))).length;
    const r = await send(t.n, 'b@good.example', await signedGood([], 'via bdat'), { bdat: true });
    assert.equal(r.code, 250, r.text);
    const stored = (await waitForMessages(t.n.mailbox('alice@example.test'), before + 1)).find((m) =>
      m.toString().includes('via bdat'),
    )!;
    assert.match(ours(stored)[0]!, /dkim=pass .*dmarc=pass/);
  });
});

test('dmarc.reject: quarantine delivers a p=reject failure with the junk header instead', async () => {
  const t = await node({ dmarc: { reject: 'quarantine' } });
  try {
    const r = await send(t.n, 'b@spoofed.example', message({ from: 'ceo@spoofed.example' }));
    assert.equal(r.code, 250);
    const [stored] = await waitForMessages(t.n.mailbox('alice@example.test'), 1);
    assert.deepEqual(fields(stored!, 'X-Ferrymail-Junk'), ['X-Ferrymail-Junk: dmarc-quarantine']);
  } finally {
    await t.close();
  }
});

test('dmarc.reject: ignore and dmarc.quarantine: ignore deliver failures untouched, results still recorded', async () => {
  const t = await node({
    dmarc: { reject: 'ignore', quarantine: 'ignore' },
    quarantineHeader: 'X-Spam-Flag',
  });
  try {
    assert.equal((await send(t.n, 'b@spoofed.example', message({ from: 'ceo@spoofed.example' }))).code, 250);
    assert.equal((await send(t.n, 'b@junk.example', message({ from: 'a@junk.example' }))).code, 250);
    const stored = await waitForMessages(t.n.mailbox('alice@example.test'), 2);
    for (const m of stored) {
      assert.deepEqual(fields(m, 'X-Spam-Flag'), []);
      assert.match(ours(m)[0]!, /dmarc=fail/);
    }
  } finally {
    await t.close();
  }
});

test('a verification that times out is temperror, logged, and the message is still delivered', async () => {
  // DNS answers never come (each query gives up after 8 s); the verification gives up after 300 ms.
  const t = await node({ timeout: '300ms' }, { dns: { servers: [dns.server], timeout: '8s', tries: 1 } });
  try {
    const started = Date.now();
    const r = await send(t.n, 'b@slow.example', message({ from: 'a@slow.example' }));
    assert.equal(r.code, 250);
    assert.ok(Date.now() - started < 6000, 'the 250 came after the verification timeout, not the DNS one');
    const [stored] = await waitForMessages(t.n.mailbox('alice@example.test'), 1);
    assert.match(ours(stored!)[0]!, /spf=temperror.*dkim=temperror.*dmarc=temperror.*arc=temperror/);
  } finally {
    await t.close();
  }
});

test('a DNS failure on the DMARC record is dmarc=temperror and never a refusal', async () => {
  const t = await node();
  try {
    const r = await send(t.n, 'b@slow.example', message({ from: 'a@slow.example' }));
    assert.equal(r.code, 250);
    const [stored] = await waitForMessages(t.n.mailbox('alice@example.test'), 1);
    assert.match(ours(stored!)[0]!, /spf=temperror.*dmarc=temperror/);
  } finally {
    await t.close();
  }
});

test('clients in trustedRanges are not checked: no header of ours', async () => {
  const t = await node({ trustedRanges: ['127.0.0.0/8'] });
  try {
    assert.equal((await send(t.n, 'b@spoofed.example', message({ from: 'ceo@spoofed.example' }))).code, 250);
    const [stored] = await waitForMessages(t.n.mailbox('alice@example.test'), 1);
    assert.deepEqual(ours(stored!), []);
  } finally {
    await t.close();
  }
});

test('enabled: false checks nothing', async () => {
  const t = await node({ enabled: false });
  try {
    assert.equal((await send(t.n, 'b@spoofed.example', message({ from: 'ceo@spoofed.example' }))).code, 250);
    const [stored] = await waitForMessages(t.n.mailbox('alice@example.test'), 1);
    assert.deepEqual(ours(stored!), []);
  } finally {
    await t.close();
  }
});
