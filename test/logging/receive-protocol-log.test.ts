import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  demoLikeConfig,
  makeTempDir,
  removeDir,
  startTestNode,
  type TestNode,
  waitForMessages,
} from '../helpers/node-fixture.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';
import { bySession, type LogRecord, rawText, readLogFolder, waitForRecords } from './read-log.ts';

/**
 * A receive connector with `protocolLogging: verbose` writes each SMTP session to
 * `<dataDir>/logs/protocol/SmtpReceive/` in Exchange's format: a `#Fields` header, then one CSV
 * line per event (`+` connect, `<` received, `>` sent, `*` information, `-` disconnect), with
 * the session id and a sequence number. A connector left at `none` writes nothing.
 */
describe('receive protocol log', () => {
  let t: TestNode;
  let dir: string;
  let receiveDir: string;

  before(async () => {
    dir = await makeTempDir('ferrymail-protolog-');
    const base = await demoLikeConfig(dir);
    const [defaultConnector, client] = base.receiveConnectors;
    t = await startTestNode({
      dir,
      config: {
        ...base,
        receiveConnectors: [
          { ...defaultConnector, protocolLogging: 'verbose' },
          { ...client, protocolLogging: 'none' },
          {
            name: 'Implicit',
            bindings: ['127.0.0.1:0'],
            permissionGroups: { anonymous: ['submit'] },
            tls: { mode: 'implicit' },
            protocolLogging: 'verbose',
          },
        ],
      },
    });
    receiveDir = join(dir, 'data', 'logs', 'protocol', 'SmtpReceive');
  });
  after(async () => {
    await t.stop();
    await removeDir(dir);
  });

  const closed = (sessionId: () => string | undefined) => (records: LogRecord[]) =>
    records.some((r) => r.sessionId === sessionId() && r.event === '-');

  it('writes one session as +, <, >, * and - lines under one session id with increasing sequence numbers', async () => {
    const c = await SmtpTestClient.connect(t.port('Default'));
    const body = 'From: <x@elsewhere.test>\r\nSubject: logged\r\n\r\nBODY-MARKER-1f3a secret words\r\n';
    let ehlo: Awaited<ReturnType<SmtpTestClient['command']>>;
    try {
      await c.greeting();
      assert.equal((await c.command('EHLO client.example.test')).code, 250);
      assert.equal((await c.startTls()).code, 220);
      ehlo = await c.command('EHLO client.example.test');
      assert.equal(ehlo.code, 250);
      assert.equal((await c.command('MAIL FROM:<x@elsewhere.test>')).code, 250);
      assert.equal((await c.command('RCPT TO:<alice@example.test>')).code, 250);
      assert.equal((await c.command('DATA')).code, 354);
      assert.equal((await c.command(`${body}.`)).code, 250);
      assert.equal((await c.command('QUIT')).code, 221);
    } finally {
      c.close();
    }
    await waitForMessages(t.mailbox('alice@example.test'), 1);
    const records = await waitForRecords(receiveDir, (rs) => rs.some((r) => r.event === '-'));
    const sessions = [...bySession(records).values()];
    assert.equal(sessions.length, 1, 'one session, one session id');
    const lines = sessions[0]!;

    assert.deepEqual(
      lines.map((r) => r.sequence),
      lines.map((_, i) => i),
      'sequence numbers count 0, 1, 2, … within the session',
    );
    for (const r of lines) {
      assert.equal(r.connector, 'Default');
      assert.match(
        r.dateTime,
        /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/,
        'ISO date-time in UTC with ms',
      );
      assert.equal(r.local, `127.0.0.1:${t.port('Default')}`);
      assert.match(r.remote, /^127\.0\.0\.1:\d+$/);
    }
    const times = lines.map((r) => Date.parse(r.dateTime));
    assert.deepEqual(
      times,
      [...times].sort((a, b) => a - b),
      'time never goes backwards',
    );

    const events = lines.map((r) => `${r.event} ${r.data}`);
    assert.equal(lines[0]!.event, '+', 'the first line is the connect');
    assert.match(events[1]!, /^> 220 mx\.example\.test /, 'then the banner, as sent');
    assert.ok(events.includes('< EHLO client.example.test'), 'commands as received');
    assert.ok(events.includes('< STARTTLS'));
    assert.ok(events.includes('> 220 2.0.0 Ready to start TLS'));
    const tls = lines.find((r) => r.event === '*' && r.data.startsWith('TLS negotiated'));
    assert.ok(tls, 'TLS is an information line');
    assert.match(tls.data, /version=TLSv1\.[23] cipher=\S+/);
    const ehloLine = lines.filter((r) => r.event === '>' && r.data.startsWith('250-'))[1];
    assert.ok(ehloLine, 'the EHLO reply after TLS is one line');
    assert.equal(ehloLine.data, `250-${ehlo.lines.join(' ')}`, 'a multi-line reply on one line');
    assert.ok(events.includes('< MAIL FROM:<x@elsewhere.test>'));
    assert.ok(events.includes('< RCPT TO:<alice@example.test>'));
    assert.ok(events.includes('< DATA'));
    assert.ok(events.some((e) => /^> 250 2\.0\.0 Ok: queued as [0-9A-Z]+$/.test(e)));
    const size = lines.find((r) => r.event === '*' && r.context === 'DATA');
    assert.ok(size, 'the content is an information line with its size');
    assert.equal(
      size.data,
      `${Buffer.byteLength(`${body}.\r\n`)} bytes of message content received`,
      'the size of the content as it came over the wire, end of data included',
    );
    assert.ok(events.includes('< QUIT'));
    assert.ok(events.includes('> 221 2.0.0 mx.example.test Bye'));
    const last = lines.at(-1)!;
    assert.equal(last.event, '-', 'the last line is the disconnect');
    assert.equal(last.context, 'Local', 'we closed it, after QUIT');

    const raw = await rawText(receiveDir);
    assert.ok(!raw.includes('BODY-MARKER-1f3a'), 'no byte of the message body is logged');
    assert.ok(!raw.includes('Subject: logged'), 'not even its header section');
  });

  it('opens each file with the Exchange header and names it by hour and counter', async () => {
    const files = await readLogFolder(receiveDir);
    assert.ok(files.length >= 1);
    const file = files[0]!;
    assert.match(file.name, /^RECV\d{10}-\d+\.LOG$/);
    const hour = new Date().toISOString().slice(0, 13).replace(/[-T]/g, '');
    assert.ok(file.name.startsWith(`RECV${hour}`) || files.length > 1, `named for this hour (${hour})`);
    assert.equal(file.header.length, 5);
    assert.equal(file.header[0], '#Software: Ferrymail');
    assert.match(file.header[1]!, /^#Version: \d+\.\d+\.\d+/);
    assert.equal(file.header[2], '#Log-type: SMTP Receive Protocol Log');
    assert.match(file.header[3]!, /^#Date: \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    assert.equal(
      file.header[4],
      '#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context',
    );
    assert.ok(file.raw.startsWith('#Software'), 'the header comes first');
  });

  it('quotes data holding commas and quotes, so that the line still has its nine fields', async () => {
    const c = await SmtpTestClient.connect(t.port('Default'));
    let id: string | undefined;
    try {
      await c.greeting();
      await c.command('EHLO client.example.test');
      await c.command('VRFY "Smith, John" <js@example.test>');
      await c.command('QUIT');
    } finally {
      c.close();
    }
    const records = await waitForRecords(receiveDir, (rs) => {
      id = rs.find((r) => r.data.startsWith('VRFY'))?.sessionId;
      return closed(() => id)(rs);
    });
    const vrfy = records.find((r) => r.sessionId === id && r.event === '<' && r.data.startsWith('VRFY'));
    assert.equal(vrfy?.data, 'VRFY "Smith, John" <js@example.test>', 'the text comes back exactly');
    assert.ok((await rawText(receiveDir)).includes('"VRFY ""Smith, John"" <js@example.test>"'));
  });

  it('logs BDAT content by its size only', async () => {
    const c = await SmtpTestClient.connect(t.port('Default'));
    const content = 'Subject: chunked\r\n\r\nBDAT-MARKER-77c0\r\n';
    let id: string | undefined;
    try {
      await c.greeting();
      await c.command('EHLO client.example.test');
      await c.command('MAIL FROM:<x@elsewhere.test>');
      await c.command('RCPT TO:<bob@example.test>');
      const half = Math.floor(content.length / 2);
      c.write(`BDAT ${half}\r\n${content.slice(0, half)}`);
      assert.equal((await c.reply()).code, 250);
      const rest = content.slice(half);
      c.write(`BDAT ${rest.length} LAST\r\n${rest}`);
      assert.equal((await c.reply()).code, 250);
      await c.command('QUIT');
    } finally {
      c.close();
    }
    const records = await waitForRecords(receiveDir, (rs) => {
      id = rs.find((r) => r.context === 'BDAT')?.sessionId;
      return closed(() => id)(rs);
    });
    const info = records.find((r) => r.sessionId === id && r.context === 'BDAT');
    assert.equal(info?.data, `${content.length} bytes of message content received`);
    assert.ok(records.some((r) => r.sessionId === id && r.data === `BDAT ${Math.floor(content.length / 2)}`));
    assert.ok(!(await rawText(receiveDir)).includes('BDAT-MARKER-77c0'), 'no content in the log');
  });

  it('keeps sessions apart: each has its own id and its own sequence from 0', async () => {
    const a = await SmtpTestClient.connect(t.port('Default'));
    const b = await SmtpTestClient.connect(t.port('Default'));
    try {
      await a.greeting();
      await b.greeting();
      await a.command('EHLO a.example.test');
      await b.command('EHLO b.example.test');
      await a.command('NOOP');
      await b.command('NOOP');
      await a.command('QUIT');
      await b.command('QUIT');
    } finally {
      a.close();
      b.close();
    }
    const sessionOf = (rs: LogRecord[], helo: string) => rs.find((r) => r.data === `EHLO ${helo}`)?.sessionId;
    const records = await waitForRecords(
      receiveDir,
      (rs) =>
        closed(() => sessionOf(rs, 'a.example.test'))(rs) &&
        closed(() => sessionOf(rs, 'b.example.test'))(rs),
    );
    const idA = sessionOf(records, 'a.example.test')!;
    const idB = sessionOf(records, 'b.example.test')!;
    assert.notEqual(idA, idB);
    for (const id of [idA, idB]) {
      const lines = records.filter((r) => r.sessionId === id);
      assert.deepEqual(
        lines.map((r) => r.sequence),
        lines.map((_, i) => i),
      );
      assert.deepEqual(
        lines.map((r) => r.event),
        ['+', '>', '<', '>', '<', '>', '<', '>', '-'],
      );
    }
  });

  it('logs implicit TLS right after the connect, before the banner', async () => {
    const c = await SmtpTestClient.connect(t.port('Implicit'), { tls: true });
    try {
      await c.greeting();
      await c.command('QUIT');
    } finally {
      c.close();
    }
    const records = await waitForRecords(receiveDir, (rs) =>
      rs.some((r) => r.connector === 'Implicit' && r.event === '-'),
    );
    const lines = records.filter((r) => r.connector === 'Implicit');
    assert.deepEqual(lines.map((r) => `${r.event} ${r.context}`).slice(0, 3), ['+ ', '* implicit TLS', '> ']);
    assert.match(lines[1]!.data, /^TLS negotiated: version=TLSv1\.[23] cipher=\S+$/);
  });

  it('says Remote when the client hangs up without QUIT', async () => {
    const c = await SmtpTestClient.connect(t.port('Default'));
    await c.greeting();
    await c.command('EHLO hangup.example.test');
    c.close();
    let id: string | undefined;
    const records = await waitForRecords(receiveDir, (rs) => {
      id = rs.find((r) => r.data === 'EHLO hangup.example.test')?.sessionId;
      return closed(() => id)(rs);
    });
    assert.equal(records.filter((r) => r.sessionId === id).at(-1)?.context, 'Remote');
  });

  it('writes nothing for a connector whose protocolLogging is none', async () => {
    const c = await SmtpTestClient.connect(t.port('Client'));
    try {
      await c.greeting();
      await c.command('EHLO unlogged.example.test');
      await c.command('QUIT');
    } finally {
      c.close();
    }
    // A logged session after it: once its lines are in, the unlogged one's would be too.
    const d = await SmtpTestClient.connect(t.port('Default'));
    try {
      await d.greeting();
      await d.command('EHLO marker.example.test');
      await d.command('QUIT');
    } finally {
      d.close();
    }
    let id: string | undefined;
    const records = await waitForRecords(receiveDir, (rs) => {
      id = rs.find((r) => r.data === 'EHLO marker.example.test')?.sessionId;
      return closed(() => id)(rs);
    });
    assert.ok(!records.some((r) => r.connector === 'Client'), 'no line of the Client connector');
    assert.ok(!(await rawText(receiveDir)).includes('unlogged.example.test'));
  });
});

describe('protocol logging off everywhere', () => {
  it('creates no protocol log folder at all', async () => {
    const dir = await makeTempDir('ferrymail-protolog-off-');
    const t = await startTestNode({ dir, config: await demoLikeConfig(dir) });
    try {
      const c = await SmtpTestClient.connect(t.port('Default'));
      await c.greeting();
      await c.command('EHLO client.example.test');
      await c.command('QUIT');
      c.close();
    } finally {
      await t.stop();
    }
    await assert.rejects(stat(join(dir, 'data', 'logs', 'protocol')), { code: 'ENOENT' });
    await removeDir(dir);
  });
});
