import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type MtaStsPolicy, mxMatchesPolicy } from '../../../src/routing/mta-sts/index.ts';

const policy = (mx: string[]): MtaStsPolicy => ({
  mode: 'enforce',
  mx,
  maxAge: 86400,
  id: '1',
  fetchedAt: 0,
});

/** RFC 8461 §4.1: an MX host matches a policy mx pattern exactly, or as one label under '*.'. */
describe('MX host names are matched against the policy mx patterns', () => {
  it('matches a host named exactly, ignoring case and a trailing dot', () => {
    const p = policy(['mx1.example.test']);
    assert.equal(mxMatchesPolicy(p, 'mx1.example.test'), true);
    assert.equal(mxMatchesPolicy(p, 'MX1.Example.TEST.'), true);
    assert.equal(mxMatchesPolicy(p, 'mx2.example.test'), false);
    assert.equal(mxMatchesPolicy(p, 'mx1.example.test.evil.test'), false);
    assert.equal(mxMatchesPolicy(p, 'x.mx1.example.test'), false);
  });

  it('lets a wildcard stand for exactly one leftmost label, never zero or two', () => {
    const p = policy(['*.mail.example.test']);
    assert.equal(mxMatchesPolicy(p, 'a.mail.example.test'), true);
    assert.equal(mxMatchesPolicy(p, 'A.MAIL.example.test.'), true);
    assert.equal(mxMatchesPolicy(p, 'mail.example.test'), false);
    assert.equal(mxMatchesPolicy(p, 'a.b.mail.example.test'), false);
    assert.equal(mxMatchesPolicy(p, 'amail.example.test'), false);
  });

  it('matches any of several patterns and nothing for an empty list or an empty host', () => {
    const p = policy(['mx1.example.test', '*.backup.example.test']);
    assert.equal(mxMatchesPolicy(p, 'x.backup.example.test'), true);
    assert.equal(mxMatchesPolicy(p, 'mx1.example.test'), true);
    assert.equal(mxMatchesPolicy(policy([]), 'mx1.example.test'), false);
    assert.equal(mxMatchesPolicy(p, ''), false);
  });

  it('never treats a wildcard in the MX name itself as matching', () => {
    assert.equal(mxMatchesPolicy(policy(['*.example.test']), '*.example.test'), false);
  });
});
