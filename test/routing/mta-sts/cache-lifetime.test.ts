import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { MtaStsLookup, MtaStsPolicies } from '../../../src/routing/mta-sts/index.ts';
import { makeCertificates, POLICY, startWorld, stsZone, type World } from './fixture.ts';

const DAY = 86_400_000;

/**
 * RFC 8461 §5.1: a fetched policy is used until max_age, refreshed when the TXT id changes, and
 * kept (unexpired) when a refresh or the TXT lookup fails; once expired, it no longer protects.
 */
describe('a cached policy is used until max_age and survives failed refreshes', () => {
  let world: World;
  let policies: MtaStsPolicies;
  let n = 0;

  before(async () => {
    const certs = await makeCertificates();
    world = await startWorld(certs.ca, await certs.forName('mta-sts.example.test'));
  });
  after(() => world.close());

  /** Each test starts from a fresh cache holding policy id "first", fetched now (max_age one day). */
  beforeEach(async () => {
    world.dns.set(stsZone('first'));
    world.https.serve(POLICY);
    policies = world.policies({ cacheFile: join(world.dir, `lifetime-${++n}.json`) });
    const first = await policies.lookup('example.test');
    assert.equal(first.kind === 'policy' && first.fromCache, false);
  });

  const fetches = () => world.https.requests.length;
  const policyOf = (result: MtaStsLookup) => {
    assert.equal(result.kind, 'policy', JSON.stringify(result));
    return result.kind === 'policy' ? result : assert.fail();
  };

  it('is used without a fetch while the TXT id is unchanged and max_age has not passed', async () => {
    const before = fetches();
    world.clock.advance(DAY - 1000);
    const result = policyOf(await policies.lookup('example.test'));
    assert.equal(result.fromCache, true);
    assert.equal(result.policy.id, 'first');
    assert.equal(result.warning, undefined);
    assert.equal(fetches(), before);
  });

  it('is refetched when the TXT id changes', async () => {
    world.dns.set(stsZone('second'));
    world.https.serve(POLICY.replace('mode: enforce', 'mode: testing'));
    const before = fetches();
    const result = policyOf(await policies.lookup('example.test'));
    assert.deepEqual([result.fromCache, result.policy.id, result.policy.mode], [false, 'second', 'testing']);
    assert.equal(fetches(), before + 1);
    assert.equal(policyOf(await policies.lookup('example.test')).fromCache, true, 'and then cached');
  });

  it('is refetched after max_age even with the same id', async () => {
    world.clock.advance(DAY);
    const result = policyOf(await policies.lookup('example.test'));
    assert.equal(result.fromCache, false);
    assert.equal(result.policy.fetchedAt, world.clock.now());
  });

  it('stays in use, with a warning, when the refresh for a new id fails', async () => {
    world.dns.set(stsZone('second'));
    world.https.handle = (_req, res) => {
      res.writeHead(500).end();
    };
    const result = policyOf(await policies.lookup('example.test'));
    assert.deepEqual([result.fromCache, result.policy.id], [true, 'first']);
    assert.match(result.warning ?? '', /policy id second could not be fetched .*HTTP status 500/);
  });

  it('stays in use when the TXT lookup fails temporarily', async () => {
    world.dns.set(stsZone(undefined, { '_mta-sts.example.test': { rcode: 'SERVFAIL' } }));
    const result = policyOf(await policies.lookup('example.test'));
    assert.equal(result.policy.id, 'first');
    assert.match(result.warning ?? '', /TXT lookup failed/);
  });

  it('stays in use while unexpired when the TXT record disappears, then is none', async () => {
    world.dns.set(stsZone(undefined));
    world.clock.advance(DAY / 2);
    assert.equal(policyOf(await policies.lookup('example.test')).policy.id, 'first');
    world.clock.advance(DAY / 2);
    assert.equal((await policies.lookup('example.test')).kind, 'none');
    const saved = JSON.parse(await readFile(join(world.dir, `lifetime-${n}.json`), 'utf8'));
    assert.deepEqual(saved.policies, {}, 'the expired policy of a domain without a record is forgotten');
  });

  it('is temporary once expired if the policy cannot be fetched again', async () => {
    world.clock.advance(DAY + 1);
    world.https.handle = () => {};
    const result = await world
      .policies({ cacheFile: join(world.dir, `lifetime-${n}.json`), timeout: 200 })
      .lookup('example.test');
    assert.equal(result.kind, 'temporary');
    assert.match(result.kind === 'temporary' ? result.reason : '', /timed out/);
    world.dns.set(stsZone(undefined, { '_mta-sts.example.test': { rcode: 'SERVFAIL' } }));
    assert.equal((await policies.lookup('example.test')).kind, 'temporary', 'and when DNS fails too');
  });
});
