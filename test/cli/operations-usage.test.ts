import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { ferrymail, MAIN } from './run-cli.ts';

/**
 * The operations commands' help and usage errors, which need no node: every command answers
 * --help with its usage (exit 0), and a command line that makes no sense with exit 2 and the
 * command's usage, before anything is sent anywhere.
 */
describe('ferrymail operations usage', () => {
  it('prints each command’s usage for help <command> and <command> --help, with exit 0', () => {
    const cases: Array<[string[], RegExp]> = [
      [['help', 'queue'], /^Usage: ferrymail queue <command>/],
      [['queue', '--help'], /^Usage: ferrymail queue <command>/],
      [['queue', 'remove', '--help'], /^Usage: ferrymail queue <command>/],
      [['queue'], /^Usage: ferrymail queue <command>/],
      [['help', 'trace'], /^Usage: ferrymail trace/],
      [['trace', '--help'], /^Usage: ferrymail trace/],
      [['help', 'send-test'], /^Usage: ferrymail send-test/],
      [['send-test', '-h'], /^Usage: ferrymail send-test/],
      [['start', '--help'], /^Usage: ferrymail <command>/],
      [['help', 'passwd'], /^Usage: ferrymail <command>/],
    ];
    for (const [args, usage] of cases) {
      const r = ferrymail(args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, usage, args.join(' '));
      assert.equal(r.stderr, '');
    }
  });

  it('lists the operations commands and the exit codes in the main usage', () => {
    const r = ferrymail(['help']);
    for (const text of [
      'queue list|show|retry|suspend|resume|remove|export|resubmit|release',
      'trace [filters]',
      'send-test',
    ]) {
      assert.ok(r.stdout.includes(text), text);
    }
    assert.match(
      r.stdout,
      /Exit codes: 0 success; 1 the operation failed .*; 2 wrong use .*; 3 the node cannot be reached/s,
    );
    for (const command of ['queue', 'trace']) {
      assert.match(
        ferrymail(['help', command]).stdout,
        /Exit codes: 0 done.*1 refused by the node.*2 wrong use.*3 the node\s+cannot be reached/s,
      );
    }
  });

  it('exits 2 with the command’s usage for a command line that makes no sense', () => {
    const cases: Array<[string[], RegExp, RegExp]> = [
      [['queue', 'flush'], /unknown queue command: flush/, /Usage: ferrymail queue/],
      [['queue', 'list', 'extra'], /queue list takes no arguments/, /Usage: ferrymail queue/],
      [['queue', 'list', '--ndr'], /queue list does not take --ndr/, /Usage: ferrymail queue/],
      [['queue', 'show'], /queue show needs a queue name or a message id/, /Usage: ferrymail queue/],
      [
        ['queue', 'show', '01JDQ3V6Z5M7W8X9Y0', '--status', 'Retry'],
        /--status filters a queue's messages; 01JDQ3V6Z5M7W8X9Y0 is a message id/,
        /Usage: ferrymail queue/,
      ],
      [
        ['queue', 'show', 'mailbox', '--status', 'Bounced'],
        /--status must be one of Active, Ready, Retry, Suspended, Poison, not Bounced/,
        /Usage/,
      ],
      [
        ['queue', 'show', 'mailbox', '--limit', '0'],
        /--limit must be a whole number from 1 to 1000/,
        /Usage/,
      ],
      [['queue', 'retry', '01JDQ3V6Z5M7W8X9Y0'], /queue retry takes a queue, not a message id/, /Usage/],
      [
        ['queue', 'remove', 'mailbox', '--ndr'],
        /queue remove takes a message id, not a queue \(mailbox\)/,
        /Usage/,
      ],
      [
        ['queue', 'remove', '01JDQ3V6Z5M7W8X9Y0'],
        /queue remove needs exactly one of --ndr or --no-ndr/,
        /Usage/,
      ],
      [['queue', 'export', '01JDQ3V6Z5M7W8X9Y0', '--json'], /queue export does not take --json/, /Usage/],
      [['queue', 'show', 'mailbox', '--colour'], /Unknown option '--colour'/, /Usage: ferrymail queue/],
      [['trace', '--start', 'yesterday'], /--start: not a time: yesterday/, /Usage: ferrymail trace/],
      [
        ['send-test', '--server', 'nowhere'],
        /--server: expected host:port, not nowhere/,
        /Usage: ferrymail send-test/,
      ],
      [['help', 'frobnicate'], /no help for unknown command: frobnicate/, /Usage: ferrymail <command>/],
    ];
    for (const [args, message, usage] of cases) {
      // Where a node is asked, it is one that does not exist: a usage error must come before asking.
      const connection =
        args[0] === 'queue' || args[0] === 'trace' ? ['--url', 'http://127.0.0.1:1', '--token', 'x'] : [];
      const r = ferrymail([...args, ...connection]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^ferrymail: ${message.source}`), args.join(' '));
      assert.match(r.stderr, usage, args.join(' '));
      assert.equal(r.stdout, '');
    }
  });

  it('refuses to write an exported message to a terminal (its bytes could drive it): exit 2', (t) => {
    // script(1) gives the child a pseudo-terminal as stdout.
    const probe = spawnSync('script', ['--version'], { encoding: 'utf8' });
    if (probe.error) return t.skip('script(1) is not installed');
    const command = [
      process.execPath,
      MAIN,
      'queue',
      'export',
      '01JDQ3V6Z5M7W8X9Y0',
      '--url',
      'http://127.0.0.1:1',
      '--token',
      'x',
    ];
    const r = spawnSync('script', ['-qec', command.join(' '), '/dev/null'], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(r.status, 2, r.stdout);
    assert.match(
      r.stdout,
      /queue export writes the message exactly as stored, not to a terminal: redirect it/,
    );
  });
});
