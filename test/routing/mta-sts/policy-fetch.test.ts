import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeCertificates, POLICY, startWorld, stsZone, type World } from './fixture.ts';

/** A domain with a TXT record gets its policy from https://mta-sts.<domain>/.well-known/mta-sts.txt. */
describe('an MTA-STS policy is discovered in DNS and fetched over HTTPS', () => {
  let world: World;
  before(async () => {
    const certs = await makeCertificates();
    world = await startWorld(certs.ca, await certs.forName('mta-sts.example.test'));
  });
  after(() => world.close());

  it('asks the policy host by name (SNI and Host) for the well-known path and parses the CRLF policy', async () => {
    world.https.serve(POLICY);
    const result = await world.policies().lookup('Example.TEST.');
    assert.deepEqual(result, {
      kind: 'policy',
      fromCache: false,
      policy: {
        mode: 'enforce',
        mx: ['mx1.example.test', '*.backup.example.test'],
        maxAge: 86400,
        id: '20260101',
        fetchedAt: world.clock.now(),
      },
    });
    assert.deepEqual(world.https.requests.at(-1), {
      host: 'mta-sts.example.test',
      servername: 'mta-sts.example.test',
      path: '/.well-known/mta-sts.txt',
    });
    assert.ok(world.dns.queries.some((q) => q.name === '_mta-sts.example.test' && q.type === 'TXT'));
  });

  it('parses an LF policy in testing mode with its fields in any order and unknown fields ignored', async () => {
    world.dns.set(stsZone('lf2'));
    world.https.serve(
      'mode: testing\nmax_age: 604800\nmx: a.example.test\nversion: STSv1\nfoo: bar\nmx: b.example.test\n',
    );
    const result = await world.policies().lookup('example.test');
    assert.equal(result.kind, 'policy');
    if (result.kind !== 'policy') return;
    assert.deepEqual(
      { mode: result.policy.mode, mx: result.policy.mx, maxAge: result.policy.maxAge, id: result.policy.id },
      { mode: 'testing', mx: ['a.example.test', 'b.example.test'], maxAge: 604800, id: 'lf2' },
    );
  });

  it('accepts a mode none policy without mx lines', async () => {
    world.dns.set(stsZone('none3'));
    world.https.serve('version: STSv1\nmode: none\nmax_age: 300\n');
    const result = await world.policies().lookup('example.test');
    assert.equal(result.kind === 'policy' && result.policy.mode, 'none');
  });

  it('finds the policy id in a TXT record split into several character-strings, with extensions', async () => {
    world.dns.set({
      ...stsZone(undefined),
      '_mta-sts.example.test': { TXT: [['v=STSv1; ', 'id=split4; ext=1'], 'v=spf1 -all'] },
    });
    world.https.serve(POLICY);
    const result = await world.policies().lookup('example.test');
    assert.equal(result.kind === 'policy' && result.policy.id, 'split4');
  });
});
