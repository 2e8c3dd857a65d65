import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeCertificates, POLICY, startWorld, stsZone, type World } from './fixture.ts';

/** The policy cache is a file that outlives the process, replaced whole, and never a reason to fail. */
describe('the MTA-STS cache file keeps policies across restarts', () => {
  let world: World;
  before(async () => {
    const certs = await makeCertificates();
    world = await startWorld(certs.ca, await certs.forName('mta-sts.example.test'));
    world.https.serve(POLICY);
  });
  after(() => world.close());

  it('gives a new instance (a restart) the policy without fetching it again', async () => {
    const cacheFile = join(world.dir, 'restart', 'policies.json');
    const first = await world.policies({ cacheFile }).lookup('example.test');
    assert.equal(first.kind === 'policy' && first.fromCache, false);
    const fetched = world.https.requests.length;
    const saved = JSON.parse(await readFile(cacheFile, 'utf8'));
    assert.equal(saved.version, 1);
    assert.equal(saved.policies['example.test'].id, '20260101');
    assert.deepEqual(await readdir(dirname(cacheFile)), ['policies.json'], 'no temporary file left');

    const restarted = await world.policies({ cacheFile }).lookup('example.test');
    assert.equal(restarted.kind, 'policy');
    if (restarted.kind !== 'policy' || first.kind !== 'policy') return;
    assert.equal(restarted.fromCache, true);
    assert.deepEqual(restarted.policy, first.policy);
    assert.equal(world.https.requests.length, fetched);
  });

  it('keeps serving a restart from the cache while the policy host is down', async () => {
    const cacheFile = join(world.dir, 'down', 'policies.json');
    await world.policies({ cacheFile }).lookup('example.test');
    world.dns.set(stsZone('changed'));
    world.https.handle = (_req, res) => {
      res.writeHead(503).end();
    };
    try {
      const result = await world.policies({ cacheFile }).lookup('example.test');
      assert.equal(result.kind === 'policy' && result.policy.id, '20260101');
    } finally {
      world.dns.set(stsZone('20260101'));
      world.https.serve(POLICY);
    }
  });

  it('starts empty from a damaged file and replaces it', async () => {
    const cacheFile = join(world.dir, 'damaged', 'policies.json');
    await mkdir(dirname(cacheFile), { recursive: true });
    for (const damage of [
      '{"version":1,"policies":{"example.test":{"mode":"enforce"',
      '[]',
      '{"version":9}',
    ]) {
      await writeFile(cacheFile, damage);
      const result = await world.policies({ cacheFile }).lookup('example.test');
      assert.equal(result.kind === 'policy' && result.fromCache, false, damage);
      assert.equal(JSON.parse(await readFile(cacheFile, 'utf8')).policies['example.test'].mode, 'enforce');
    }
  });

  it('drops a cached entry that is malformed and keeps the others', async () => {
    const cacheFile = join(world.dir, 'entries', 'policies.json');
    await mkdir(dirname(cacheFile), { recursive: true });
    const good = {
      mode: 'testing',
      mx: ['mx.other.test'],
      maxAge: 86400,
      id: 'o1',
      fetchedAt: world.clock.now(),
    };
    await writeFile(
      cacheFile,
      JSON.stringify({
        version: 1,
        policies: { 'other.test': good, 'example.test': { ...good, id: '20260101', maxAge: 99_999_999 } },
      }),
    );
    world.dns.set(stsZone('20260101', { '_mta-sts.other.test': { TXT: ['v=STSv1; id=o1'] } }));
    const policies = world.policies({ cacheFile });
    const other = await policies.lookup('other.test');
    assert.deepEqual(other, { kind: 'policy', policy: good, fromCache: true });
    const example = await policies.lookup('example.test');
    assert.equal(example.kind === 'policy' && example.fromCache, false, 'the bad entry was not trusted');
  });

  it('shares one fetch among concurrent lookups of a domain', async () => {
    const cacheFile = join(world.dir, 'concurrent', 'policies.json');
    const before = world.https.requests.length;
    const policies = world.policies({ cacheFile });
    const results = await Promise.all(Array.from({ length: 5 }, () => policies.lookup('example.test')));
    assert.ok(results.every((r) => r.kind === 'policy'));
    assert.equal(world.https.requests.length, before + 1);
  });

  it('still answers with the fetched policy when the cache file cannot be written', async () => {
    const blocker = join(world.dir, 'blocker');
    await writeFile(blocker, 'a file where the cache folder should be');
    const warnings: unknown[] = [];
    const logger = { warn: (...args: unknown[]) => warnings.push(args) } as unknown as NonNullable<
      Parameters<World['policies']>[0]
    >['logger'];
    const result = await world
      .policies({ cacheFile: join(blocker, 'policies.json'), logger })
      .lookup('example.test');
    assert.equal(result.kind, 'policy');
    assert.equal(warnings.length, 1);
  });
});
