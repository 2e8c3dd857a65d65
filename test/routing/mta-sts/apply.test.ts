import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyMtaSts, type MtaStsLookup, type MtaStsPolicy } from '../../../src/routing/mta-sts/index.ts';

const MX = ['mx1.example.test', 'x.backup.example.test', 'rogue.attacker.test'];

function lookup(mode: MtaStsPolicy['mode'], warning?: string): MtaStsLookup {
  return {
    kind: 'policy',
    fromCache: true,
    policy: {
      mode,
      mx: ['mx1.example.test', '*.backup.example.test'],
      maxAge: 86400,
      id: 'p1',
      fetchedAt: 0,
    },
    ...(warning === undefined ? {} : { warning }),
  };
}

/** RFC 8461 §4.2, §5: what delivery may do with the MX hosts under each lookup result. */
describe('applyMtaSts tells delivery which MX hosts to use and whether TLS must be verified', () => {
  it('enforce: only matching MX hosts, in their order, with verified TLS required', () => {
    const decision = applyMtaSts(lookup('enforce'), MX);
    assert.deepEqual(
      { ...decision, report: undefined },
      {
        enforce: true,
        allowed: ['mx1.example.test', 'x.backup.example.test'],
        rejected: ['rogue.attacker.test'],
        mismatched: ['rogue.attacker.test'],
        requireTls: true,
        defer: false,
        report: undefined,
      },
    );
    assert.match(decision.report, /enforce.*MX not in policy: rogue\.attacker\.test/);
  });

  it('enforce with no matching MX host: nothing allowed, defer rather than bounce', () => {
    const decision = applyMtaSts(lookup('enforce'), ['rogue.attacker.test']);
    assert.deepEqual([decision.allowed, decision.defer, decision.requireTls], [[], true, true]);
    assert.match(decision.report, /no MX host allowed, deferring/);
  });

  it('testing: every MX host allowed without required TLS, the report says what would fail', () => {
    const decision = applyMtaSts(lookup('testing'), MX);
    assert.deepEqual(
      [decision.enforce, decision.allowed, decision.rejected, decision.requireTls, decision.defer],
      [false, MX, [], false, false],
    );
    assert.deepEqual(decision.mismatched, ['rogue.attacker.test']);
    assert.match(decision.report, /testing.*MX not in policy: rogue\.attacker\.test/);
  });

  it('mode none, no policy and (by default) a temporary lookup restrict nothing', () => {
    for (const result of [
      lookup('none'),
      { kind: 'none', reason: 'no TXT record' } as const,
      { kind: 'temporary', reason: 'timed out' } as const,
    ]) {
      const decision = applyMtaSts(result, MX);
      assert.deepEqual(
        [decision.enforce, decision.allowed, decision.rejected, decision.requireTls, decision.defer],
        [false, MX, [], false, false],
        result.kind,
      );
    }
  });

  it('a temporary lookup defers when asked to', () => {
    const decision = applyMtaSts({ kind: 'temporary', reason: 'timed out' }, MX, { onTemporary: 'defer' });
    assert.equal(decision.defer, true);
    assert.match(decision.report, /timed out; deferring/);
  });

  it('the report carries the lookup warning (a cached policy used after a failed refresh)', () => {
    assert.match(applyMtaSts(lookup('enforce', 'refresh failed'), MX).report, /refresh failed/);
  });
});
