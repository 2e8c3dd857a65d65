import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { hello, plain, type SecurityNode, send, startSecurityNode } from './auth-fixture.ts';

/**
 * Send-as on authenticated submission: MAIL FROM and every From: address must be the user's own
 * (primary or proxy address) or granted by `sendAs`, else 550 5.7.1 and nothing is stored. The
 * null sender needs `sendAs: ["<>"]`. Off where AUTH is not required (unless configured), and
 * bypassed by the acceptAnySender permission.
 */
describe('send-as', () => {
  let n: SecurityNode;
  before(async () => {
    const submission = (name: string, extra: Record<string, unknown> = {}, rights = ['submit', 'relay']) => ({
      name,
      bindings: ['127.0.0.1:0'],
      permissionGroups: { authenticatedUsers: rights },
      auth: { requireTls: false, required: true, ...extra },
      limits: { tarpitInterval: 0 },
    });
    n = await startSecurityNode(
      [
        submission('Client'),
        submission('Trusted', {}, ['submit', 'relay', 'acceptAnySender']),
        submission('Unchecked', { sendAs: false }),
        submission('Optional', { required: false, sendAs: true }),
      ],
      {
        mailboxes: [
          { address: 'erin@example.test', sendAs: ['shared@example.test', '@sub.example.test', '<>'] },
        ],
      },
    );
  });
  after(() => n.close());

  async function loggedIn(connector: string, user: string) {
    const { c } = await hello(n.port(connector));
    assert.equal((await c.command(plain(user))).code, 235);
    return c;
  }

  const stored = (subject: string) => n.stored(subject);

  it('accepts the user’s primary and proxy addresses, in the envelope and in From:', async () => {
    const c = await loggedIn('Client', 'alice@example.test');
    const primary = await send(c, {
      from: 'alice@example.test',
      to: ['bob@example.test'],
      headers: 'From: "Alice" <Alice@Example.TEST>\r\nSubject: own primary\r\n',
    });
    assert.equal(primary.reply.code, 250, primary.reply.text);
    const proxy = await send(c, {
      from: 'a.smith@example.test',
      to: ['bob@example.test'],
      headers: 'From: a.smith@example.test (Alice Smith)\r\nSubject: own proxy\r\n',
    });
    assert.equal(proxy.reply.code, 250, proxy.reply.text);
    c.close();
    assert.equal((await n.waitStored('own primary', 1)).length, 1);
    assert.deepEqual(
      (await n.waitStored('own proxy', 1)).map((m) => m.sender),
      ['a.smith@example.test'],
    );
  });

  it('refuses another user’s address at MAIL FROM with 550 5.7.1', async () => {
    const c = await loggedIn('Client', 'alice@example.test');
    for (const sender of ['bob@example.test', 'ceo@elsewhere.test']) {
      const r = await send(c, {
        from: sender,
        to: ['bob@example.test'],
        headers: 'Subject: spoofed envelope\r\n',
      });
      assert.equal(r.step, 'mail');
      assert.equal(r.reply.code, 550);
      assert.equal(
        r.reply.text,
        `5.7.1 <${sender}>: Sender address rejected: not owned by user alice@example.test`,
      );
    }
    c.close();
    assert.deepEqual(await stored('spoofed envelope'), []);
  });

  it('refuses a From: header naming someone else at the end of data, and stores nothing', async () => {
    const c = await loggedIn('Client', 'alice@example.test');
    const spoofs = [
      'From: bob@example.test',
      'From: "alice@example.test" <ceo@elsewhere.test>',
      'From: alice@example.test, ceo@elsewhere.test',
      'From: Team: alice@example.test, bob@example.test;',
      'From: alice@example.test\r\nFrom: ceo@elsewhere.test',
      'From: "Alice"\r\n <ceo@elsewhere.test>',
      `From: alice@example.test (${'x'.repeat(20_000)})`,
      'From: not an address',
    ];
    for (const from of spoofs) {
      const r = await send(c, {
        from: 'alice@example.test',
        to: ['bob@example.test'],
        headers: `${from}\r\nSubject: spoofed header\r\n`,
      });
      assert.equal(r.step, 'end', from);
      assert.equal(r.reply.code, 550, from.slice(0, 80));
      assert.equal(r.reply.text, '5.7.1 From: header address rejected: not owned by user alice@example.test');
    }
    // A message that ends inside its header section is checked all the same.
    assert.equal((await c.command('MAIL FROM:<alice@example.test>')).code, 250);
    await c.command('RCPT TO:<bob@example.test>');
    await c.command('DATA');
    assert.equal((await c.command('Subject: spoofed header\r\nFrom: ceo@elsewhere.test\r\n.')).code, 550);
    // In BDAT chunks too, with the last header line left without its CRLF.
    assert.equal((await c.command('MAIL FROM:<alice@example.test>')).code, 250);
    await c.command('RCPT TO:<bob@example.test>');
    const chunk = 'Subject: spoofed header\r\nFrom: ceo@elsewhere.test';
    c.write(`BDAT ${chunk.length} LAST\r\n${chunk}`);
    assert.equal((await c.reply()).code, 550);
    c.close();
    assert.deepEqual(await stored('spoofed header'), []);
  });

  it('lets a user send as the addresses and domains its sendAs grants, and only those', async () => {
    const c = await loggedIn('Client', 'erin@example.test');
    for (const sender of ['shared@example.test', 'Anyone@Sub.Example.test', '']) {
      const r = await send(c, {
        from: sender,
        to: ['bob@example.test'],
        headers: `From: ${sender === '' ? 'erin@example.test' : sender}\r\nSubject: granted\r\n`,
      });
      assert.equal(r.reply.code, 250, `<${sender}>: ${r.reply.text}`);
    }
    const deeper = await send(c, { from: 'x@deep.sub.example.test', to: ['bob@example.test'] });
    assert.equal(deeper.reply.code, 550, '@sub.example.test is that domain, not its subdomains');
    c.close();
    assert.deepEqual((await n.waitStored('granted', 3)).map((m) => m.sender).sort(), [
      '',
      'Anyone@sub.example.test',
      'shared@example.test',
    ]);
    const carol = await loggedIn('Client', 'carol@example.test');
    assert.equal(
      (await send(carol, { from: 'shared@example.test', to: ['bob@example.test'] })).reply.code,
      550,
    );
    carol.close();
  });

  it('refuses the null sender to an authenticated user without sendAs "<>"', async () => {
    const c = await loggedIn('Client', 'alice@example.test');
    const r = await c.command('MAIL FROM:<>');
    assert.equal(r.code, 550);
    assert.equal(r.text, '5.7.1 The null sender is not allowed for authenticated submission');
    c.close();
  });

  it('does not check where acceptAnySender is granted, where sendAs is off, or without a login', async () => {
    for (const connector of ['Trusted', 'Unchecked']) {
      const c = await loggedIn(connector, 'alice@example.test');
      const r = await send(c, {
        from: 'bob@example.test',
        to: ['carol@example.test'],
        headers: `From: ceo@elsewhere.test\r\nSubject: unchecked ${connector}\r\n`,
      });
      assert.equal(r.reply.code, 250, `${connector}: ${r.reply.text}`);
      c.close();
      assert.equal((await n.waitStored(`unchecked ${connector}`, 1)).length, 1);
    }
    const optional = await loggedIn('Optional', 'alice@example.test');
    assert.equal(
      (await optional.command('MAIL FROM:<bob@example.test>')).code,
      550,
      'sendAs: true on a connector without required AUTH',
    );
    optional.close();
  });
});
