import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeCertificates, POLICY, startWorld, stsZone, type World } from './fixture.ts';

/** RFC 8461 §3.1: exactly one valid v=STSv1 TXT record, or the domain has no policy. */
describe('the _mta-sts TXT record decides whether a domain has a policy', () => {
  let world: World;
  before(async () => {
    const certs = await makeCertificates();
    world = await startWorld(certs.ca, await certs.forName('mta-sts.example.test'));
    world.https.serve(POLICY);
  });
  after(() => world.close());

  const noneFor = async (txt: Array<string | string[]> | undefined) => {
    world.dns.set(stsZone(undefined, txt === undefined ? {} : { '_mta-sts.example.test': { TXT: txt } }));
    const before = world.https.requests.length;
    const result = await world.policies().lookup('example.test');
    assert.equal(world.https.requests.length, before, 'no policy fetch without a valid TXT record');
    return result;
  };

  it('is none when _mta-sts does not exist', async () => {
    assert.equal((await noneFor(undefined)).kind, 'none');
  });

  it('is none when _mta-sts has only other TXT records', async () => {
    assert.equal((await noneFor(['v=spf1 -all', 'hello'])).kind, 'none');
  });

  it('is none when two v=STSv1 records are published', async () => {
    const result = await noneFor(['v=STSv1; id=one;', 'v=STSv1; id=two;']);
    assert.equal(result.kind, 'none');
    assert.match(result.kind === 'none' ? (result.reason ?? '') : '', /2 v=STSv1 TXT records/);
  });

  it('is none when the record has no id or an invalid one', async () => {
    assert.equal((await noneFor(['v=STSv1;'])).kind, 'none');
    assert.equal((await noneFor(['v=STSv1; id=not-valid!;'])).kind, 'none');
    assert.equal((await noneFor(['v=STSv1; id=123456789012345678901234567890123;'])).kind, 'none');
    assert.equal((await noneFor(['v=STSv2; id=abc;'])).kind, 'none');
  });

  it('is none for a name that cannot be a domain, without asking DNS', async () => {
    const asked = world.dns.queries.length;
    for (const name of ['bad domain.test', 'bad\n.test', '', 'localhost', 'a..test']) {
      assert.equal((await world.policies().lookup(name)).kind, 'none', JSON.stringify(name));
    }
    assert.equal(world.dns.queries.length, asked);
  });

  it('is temporary, not none, when the TXT lookup fails (SERVFAIL or timeout) and nothing is cached', async () => {
    world.dns.set(stsZone(undefined, { '_mta-sts.example.test': { rcode: 'SERVFAIL' } }));
    const servfail = await world.policies().lookup('example.test');
    assert.equal(servfail.kind, 'temporary');
    assert.match(servfail.kind === 'temporary' ? servfail.reason : '', /SERVFAIL/);
    world.dns.set(stsZone(undefined, { '_mta-sts.example.test': { timeout: true } }));
    assert.equal((await world.policies().lookup('example.test')).kind, 'temporary');
  });
});
