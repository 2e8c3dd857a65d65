import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bestMatch, normalizeIp, parseIpRange } from '../../src/receive/ip-ranges.ts';

describe('remote IP ranges', () => {
  it('parses single addresses, CIDR blocks and first-last ranges with their breadth', () => {
    assert.equal(parseIpRange('192.0.2.7')?.breadth, 0);
    assert.equal(parseIpRange('192.0.2.0/24')?.breadth, 8);
    assert.equal(parseIpRange('192.0.2.8-192.0.2.11')?.breadth, 2);
    assert.equal(parseIpRange('2001:db8::/32')?.breadth, 96);
    assert.equal(parseIpRange('::/0')?.family, 6);
  });

  it('refuses what is not a range', () => {
    for (const bad of ['', 'host.test', '10.0.0.0/33', '10.0.0.9-10.0.0.1', '10.0.0.1-::1', '1.2.3']) {
      assert.equal(parseIpRange(bad), undefined, bad);
    }
  });

  it('matches IPv4-mapped IPv6 clients as IPv4', () => {
    assert.equal(normalizeIp('::ffff:127.0.0.1'), '127.0.0.1');
    assert.equal(parseIpRange('127.0.0.0/8')?.contains('::ffff:127.0.0.1'), true);
    assert.equal(parseIpRange('::/0')?.contains('127.0.0.1'), false);
  });

  it('picks the most specific containing range', () => {
    const candidates = [
      { ranges: [parseIpRange('0.0.0.0/0')!], value: 'any' },
      { ranges: [parseIpRange('10.0.0.0/8')!], value: 'ten' },
      { ranges: [parseIpRange('10.1.2.3')!, parseIpRange('192.0.2.0/24')!], value: 'host' },
    ];
    assert.equal(bestMatch('10.1.2.3', candidates), 'host');
    assert.equal(bestMatch('10.9.9.9', candidates), 'ten');
    assert.equal(bestMatch('8.8.8.8', candidates), 'any');
    assert.equal(bestMatch('2001:db8::1', candidates), undefined);
  });

  it('ranks first-last ranges by their exact size, not a rounded prefix', () => {
    const candidates = [
      { ranges: [parseIpRange('10.0.0.0/30')!], value: 'four' },
      { ranges: [parseIpRange('10.0.0.0-10.0.0.4')!], value: 'five' },
      { ranges: [parseIpRange('10.0.0.1-10.0.0.3')!], value: 'three' },
    ];
    assert.equal(bestMatch('10.0.0.2', candidates), 'three');
    assert.equal(bestMatch('10.0.0.0', candidates), 'four');
    assert.equal(bestMatch('10.0.0.4', candidates), 'five');
  });

  it('handles IPv6 blocks, single IPv6 addresses and IPv6 ranges', () => {
    const candidates = [
      { ranges: [parseIpRange('::/0')!], value: 'any6' },
      { ranges: [parseIpRange('2001:db8::/64')!], value: 'net' },
      { ranges: [parseIpRange('2001:db8::10-2001:db8::1f')!], value: 'range' },
      { ranges: [parseIpRange('2001:db8::17')!], value: 'host' },
    ];
    assert.equal(bestMatch('2001:db8::17', candidates), 'host');
    assert.equal(bestMatch('2001:db8::18', candidates), 'range');
    assert.equal(bestMatch('2001:db8::ffff', candidates), 'net');
    assert.equal(bestMatch('::1', candidates), 'any6');
    assert.equal(bestMatch('127.0.0.1', candidates), undefined);
  });
});
