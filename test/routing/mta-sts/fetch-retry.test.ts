import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeCertificates, POLICY, startWorld, stsZone, type World } from './fixture.ts';

const MINUTE = 60_000;

/** While a policy host is down, lookups do not each wait for it: a failure is remembered for a while. */
describe('a failed policy fetch is not retried on every lookup', () => {
  let world: World;
  before(async () => {
    const certs = await makeCertificates();
    world = await startWorld(certs.ca, await certs.forName('mta-sts.example.test'));
  });
  after(() => world.close());

  it('answers from memory until retryAfterFailure has passed, then fetches again', async () => {
    world.dns.set(stsZone('r1'));
    world.https.handle = (_req, res) => {
      res.writeHead(500).end();
    };
    const policies = world.policies({ retryAfterFailure: 5 * MINUTE });
    const start = world.https.requests.length;
    assert.equal((await policies.lookup('example.test')).kind, 'temporary');
    world.clock.advance(5 * MINUTE - 1);
    const remembered = await policies.lookup('example.test');
    assert.equal(remembered.kind, 'temporary');
    assert.match(
      remembered.kind === 'temporary' ? remembered.reason : '',
      /HTTP status 500 \(not retried before/,
    );
    assert.equal(world.https.requests.length, start + 1);

    world.https.serve(POLICY);
    world.clock.advance(1);
    assert.equal((await policies.lookup('example.test')).kind, 'policy');
    assert.equal(world.https.requests.length, start + 2);
  });

  it('tries a new TXT id at once', async () => {
    world.dns.set(stsZone('r2'));
    world.https.handle = (_req, res) => {
      res.writeHead(500).end();
    };
    const policies = world.policies({ cacheFile: `${world.cacheFile}.r2` });
    assert.equal((await policies.lookup('example.test')).kind, 'temporary');
    world.dns.set(stsZone('r3'));
    world.https.serve(POLICY);
    const result = await policies.lookup('example.test');
    assert.equal(result.kind === 'policy' && result.policy.id, 'r3');
  });

  it('retries on every lookup when retryAfterFailure is 0', async () => {
    world.dns.set(stsZone('r4'));
    world.https.handle = (_req, res) => {
      res.writeHead(500).end();
    };
    const policies = world.policies({ cacheFile: `${world.cacheFile}.r4`, retryAfterFailure: 0 });
    const start = world.https.requests.length;
    await policies.lookup('example.test');
    await policies.lookup('example.test');
    assert.equal(world.https.requests.length, start + 2);
  });
});
