import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { joinDashValues, parseCount, parseTime } from '../../src/cli/args.ts';
import { UsageError } from '../../src/cli/errors.ts';
import { parseTrace } from '../../src/cli/trace-command.ts';

const NOW = Date.parse('2026-12-01T10:00:00Z');

/** Times on the command line: what an administrator types for --start and --end. */
describe('CLI time arguments', () => {
  it('reads relative times against now: -1h, -30m, -2d, -45s, -1w, +15m', () => {
    assert.equal(parseTime('-1h', '--start', NOW), NOW - 3_600_000);
    assert.equal(parseTime('-30m', '--start', NOW), NOW - 30 * 60_000);
    assert.equal(parseTime('-2d', '--start', NOW), NOW - 2 * 86_400_000);
    assert.equal(parseTime('-45s', '--start', NOW), NOW - 45_000);
    assert.equal(parseTime('-1w', '--start', NOW), NOW - 7 * 86_400_000);
    assert.equal(parseTime('+15m', '--end', NOW), NOW + 15 * 60_000);
    assert.equal(parseTime('now', '--end', NOW), NOW);
  });

  it('reads ISO 8601 with a zone, and a bare date as UTC midnight', () => {
    assert.equal(parseTime('2026-12-01T09:30:00Z', '--start', NOW), Date.parse('2026-12-01T09:30:00Z'));
    assert.equal(
      parseTime('2026-12-01T09:30:00.250+01:00', '--start', NOW),
      Date.parse('2026-12-01T08:30:00.250Z'),
    );
    assert.equal(parseTime('2026-12-01', '--start', NOW), Date.parse('2026-12-01T00:00:00Z'));
    assert.equal(parseTime('2026-12-01 09:30Z', '--start', NOW), Date.parse('2026-12-01T09:30:00Z'));
  });

  it('refuses anything else with a usage error naming the option and the accepted forms', () => {
    for (const bad of [
      'yesterday',
      '1h',
      '-1y',
      '-h',
      '2026-13-45',
      '2026-12-01T25:00Z',
      '',
      '1796115600000',
    ]) {
      assert.throws(
        () => parseTime(bad, '--start', NOW),
        (e: unknown) =>
          e instanceof UsageError && e.message.startsWith('--start: not a time') && /-30m/.test(e.message),
        bad,
      );
    }
  });

  it('passes "--start -1h" to parseArgs as "--start=-1h", and leaves other dashes alone', () => {
    assert.deepEqual(joinDashValues(['--start', '-1h', '--end', '-5m', '--json'], ['--start', '--end']), [
      '--start=-1h',
      '--end=-5m',
      '--json',
    ]);
    assert.deepEqual(joinDashValues(['--start', '--json'], ['--start']), ['--start', '--json']);
    assert.deepEqual(joinDashValues(['--sender', '-1h'], ['--start']), ['--sender', '-1h']);
  });

  it('reads counts within their range only', () => {
    assert.equal(parseCount('25', '--limit', 1, 1000), 25);
    for (const bad of ['0', '1001', '-1', '2.5', '1e3', 'ten', '']) {
      assert.throws(
        () => parseCount(bad, '--limit', 1, 1000),
        /--limit must be a whole number from 1 to 1000/,
        bad,
      );
    }
  });
});

/** `ferrymail trace` filters become the tracking API's query. */
describe('ferrymail trace arguments', () => {
  it('maps every filter to its query parameter, times as ms since epoch', () => {
    const r = parseTrace(
      [
        '--start',
        '-1h',
        '--end=2026-12-01T10:00:00Z',
        '--event',
        'deliver',
        '--sender',
        'a@example.org',
        '--recipient',
        'alice@example.test',
        '--message-id',
        '<x@y>',
        '--id',
        '01ABCDEFGHJKMNPQRS',
        '--subject',
        'hello',
        '--limit',
        '50',
        '--cursor',
        'c1',
        '--json',
      ],
      NOW,
    );
    assert.deepEqual(r.query, {
      start: NOW - 3_600_000,
      end: NOW,
      eventId: 'DELIVER',
      sender: 'a@example.org',
      recipient: 'alice@example.test',
      messageId: '<x@y>',
      internalId: '01ABCDEFGHJKMNPQRS',
      subject: 'hello',
      limit: 50,
      cursor: 'c1',
    });
    assert.equal(r.json, true);
  });

  it('refuses an unknown event, an end before the start, a bad limit and unknown options', () => {
    const cases: Array<[string[], RegExp]> = [
      [['--event', 'BOUNCE'], /--event must be one of RECEIVE, .*ADMIN, not BOUNCE/],
      [['--start', '-1h', '--end', '-2h'], /--end must be after --start/],
      [['--limit', '0'], /--limit must be a whole number from 1 to 5000/],
      [['--start', 'soon'], /--start: not a time: soon/],
      [['--colour'], /Unknown option '--colour'/],
      [['stray'], /Unexpected argument 'stray'/],
    ];
    for (const [args, message] of cases) {
      assert.throws(
        () => parseTrace(args, NOW),
        (e: unknown) =>
          e instanceof UsageError && message.test(e.message) && /ferrymail trace/.test(e.usage ?? ''),
        args.join(' '),
      );
    }
  });
});
