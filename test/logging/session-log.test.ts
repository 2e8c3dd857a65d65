import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { csvField, endpoint, oneLine, redactAuthCommand, SessionLog } from '../../src/logging/session-log.ts';
import { parseCsvLine } from './read-log.ts';

/** The lines one session produces, without a file: the format and the redaction rules. */
function memoryLog(role: 'receive' | 'send', secrets?: string[]) {
  const lines: string[] = [];
  const log = new SessionLog({
    sink: { append: (line) => lines.push(line) },
    role,
    connector: 'Test, Connector',
    sessionId: 'S1',
    now: () => Date.UTC(2026, 11, 1, 9, 30, 0, 5),
    ...(secrets ? { secrets } : {}),
  });
  const fields = () => lines.map((l) => parseCsvLine(l.replace(/\r\n$/, '')));
  return { log, lines, fields, data: () => fields().map((f) => `${f[6]} ${f[7]}`) };
}

describe('protocol log lines', () => {
  it('are CSV with nine fields, CRLF-terminated, quoting what needs it', () => {
    const { log, lines, fields } = memoryLog('receive');
    log.connect('127.0.0.1:25', '[2001:db8::1]:4000');
    log.received('VRFY "a,b"');
    assert.ok(lines.every((l) => l.endsWith('\r\n') && !l.slice(0, -2).includes('\n')));
    const [connect, vrfy] = fields();
    assert.deepEqual(connect, [
      '2026-12-01T09:30:00.005Z',
      'Test, Connector',
      'S1',
      '0',
      '127.0.0.1:25',
      '[2001:db8::1]:4000',
      '+',
      '',
      '',
    ]);
    assert.equal(vrfy![3], '1');
    assert.equal(vrfy![7], 'VRFY "a,b"');
    assert.equal(csvField('plain'), 'plain');
    assert.equal(csvField('a,b'), '"a,b"');
    assert.equal(csvField('say "hi"'), '"say ""hi"""');
  });

  it('write endpoints as ip:port, IPv6 in brackets, IPv4-mapped addresses as IPv4', () => {
    assert.equal(endpoint('192.0.2.1', 25), '192.0.2.1:25');
    assert.equal(endpoint('2001:db8::1', 25), '[2001:db8::1]:25');
    assert.equal(endpoint('::ffff:192.0.2.1', 587), '192.0.2.1:587');
    assert.equal(endpoint(undefined, undefined), '');
  });

  it('put a multi-line reply on one line and replace control characters', () => {
    assert.equal(oneLine('250-mx Hello\r\n250-SIZE 10\r\n250 HELP\r\n'), '250-mx Hello SIZE 10 HELP');
    assert.equal(oneLine('a\x00b\x1bc'), 'a?b?c');
    assert.ok(oneLine('x'.repeat(10_000)).length < 5000, 'cut when very long');
  });

  it('write nothing after the disconnect', () => {
    const { log, lines } = memoryLog('receive');
    log.connect('a:1', 'b:2');
    log.disconnect('Local');
    log.sent('250 late');
    assert.equal(lines.length, 2);
  });
});

describe('AUTH redaction rules', () => {
  it('keep the mechanism of an AUTH command and drop its initial response', () => {
    assert.equal(redactAuthCommand('AUTH PLAIN AGFsaWNlAHB3'), 'AUTH PLAIN ****');
    assert.equal(redactAuthCommand('auth plain AGFsaWNlAHB3'), 'AUTH PLAIN ****');
    assert.equal(redactAuthCommand('AUTH LOGIN'), 'AUTH LOGIN');
    assert.equal(redactAuthCommand('AUTH XOAUTH2 dXNlcj1h'), 'AUTH XOAUTH2 ****');
    assert.equal(redactAuthCommand('AUTH OAUTHBEARER bixhPWE='), 'AUTH OAUTHBEARER ****');
    assert.equal(redactAuthCommand('AUTH  PLAIN   x y z'), 'AUTH PLAIN ****');
    assert.equal(redactAuthCommand('AUTH=PLAIN secret'), 'AUTH ****', 'anything that starts like AUTH');
    assert.equal(redactAuthCommand('MAIL FROM:<a@b>'), undefined);
  });

  it('receive: every client line between AUTH and the first non-334 reply is a response', () => {
    const { log, data } = memoryLog('receive');
    log.received('AUTH XOAUTH2');
    log.sent('334 \r\n');
    log.received('dXNlcj1hbGljZQFhdXRoPUJlYXJlciB0b2tlbgEB');
    log.sent('334 eyJzdGF0dXMiOiI0MDEifQ==\r\n');
    log.received('');
    log.sent('535 5.7.8 Authentication credentials invalid\r\n');
    log.received('NOOP');
    assert.deepEqual(data(), [
      '< AUTH XOAUTH2',
      '> 334 <authentication challenge>',
      '< <authentication response>',
      '> 334 <authentication challenge>',
      '< <authentication response>',
      '> 535 5.7.8 Authentication credentials invalid',
      '< NOOP',
    ]);
  });

  it('receive: a line the session marks as a SASL response is redacted even outside an exchange', () => {
    const { log, data } = memoryLog('receive');
    log.received('c2VjcmV0', true);
    assert.deepEqual(data(), ['< <authentication response>']);
  });

  it('send: our AUTH lines and responses are redacted, the server replies are not', () => {
    const { log, data } = memoryLog('send');
    log.sent('AUTH LOGIN');
    log.received('334 VXNlcm5hbWU6');
    log.sent('cmVsYXk=');
    log.received('334 UGFzc3dvcmQ6');
    log.sent('cGFzcw==');
    log.received('235 2.7.0 Authentication successful');
    log.sent('MAIL FROM:<a@b.test>');
    assert.deepEqual(data(), [
      '> AUTH LOGIN',
      '< 334 <authentication challenge>',
      '> <authentication response>',
      '< 334 <authentication challenge>',
      '> <authentication response>',
      '< 235 2.7.0 Authentication successful',
      '> MAIL FROM:<a@b.test>',
    ]);
  });

  it('send: a configured secret never appears, whatever line carries it', () => {
    const password = 'Sm@rt-Host-Pw';
    const { log, lines } = memoryLog('send', [password, Buffer.from(password).toString('base64')]);
    log.received(`550 5.7.1 your password ${password} is wrong`);
    log.info(`debug ${Buffer.from(password).toString('base64')}`, `context ${password}`);
    const text = lines.join('');
    assert.ok(!text.includes(password));
    assert.ok(!text.includes(Buffer.from(password).toString('base64')));
    assert.ok(text.includes('your password **** is wrong'));
  });
});
