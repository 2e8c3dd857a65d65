import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ferrymail } from './run-cli.ts';

/** Exit codes a script can rely on: 0 help, 2 for a command line that makes no sense. */
describe('ferrymail usage', () => {
  it('prints the usage with exit 0 for help, --help and no command', () => {
    for (const args of [['help'], ['--help'], []]) {
      const r = ferrymail(args);
      assert.equal(r.code, 0, args.join(' '));
      assert.match(r.stdout, /^Usage: ferrymail <command>/);
      assert.match(r.stdout, /config check <file>/);
    }
  });

  it('exits 2 with the usage for an unknown command', () => {
    const r = ferrymail(['frobnicate']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^ferrymail: unknown command: frobnicate\n\nUsage: ferrymail <command>/);
  });

  it('exits 2 for unknown options, subcommands and missing arguments', () => {
    for (const args of [
      ['start', '--colour'],
      ['config', 'lint'],
      ['config', 'check'],
      ['start', 'extra'],
    ]) {
      const r = ferrymail(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /Usage: ferrymail/);
    }
  });
});
