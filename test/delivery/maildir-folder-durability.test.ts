import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const SMALL = 100; // written by the writer threads
const LARGE = 2 * 1024 * 1024; // streamed by the writer on the event loop

const STEPS = [
  { address: 'alice@example.test', size: SMALL },
  { address: 'alice@example.test', size: SMALL },
  { address: 'bob@example.test', size: SMALL },
  { address: 'carol@other.test', size: LARGE },
  { address: 'carol@other.test', size: LARGE },
  { address: 'dave@other.test', size: LARGE },
  // Folders removed behind the node's back, while it still knows them as existing.
  { address: 'alice@example.test', size: SMALL, remove: 'example.test/alice' },
  { address: 'carol@other.test', size: LARGE, remove: 'other.test/carol' },
  // Copies into a new mailbox at once: none may go in before the folders are durable.
  { address: 'erin@example.test', size: SMALL, copies: 3 },
  { address: 'frank@other.test', size: LARGE, copies: 3 },
];

/** What one step did, in order: folder fsyncs and renames (of messages into new/). */
type Entry = { what: 'fsync-dir' | 'rename'; path: string };

/**
 * A new mailbox's folders are entries in their parents: the first message into a mailbox is
 * durable only once every folder that was created, and the folder it was created in, is fsynced.
 * The deliveries run in a child process whose file calls (main thread and writer threads) are
 * recorded, so the test sees which folders were really fsynced, and when, in each delivery.
 */
describe('Maildir folders of a new mailbox are made durable before its first delivery', () => {
  let dir: string;
  let root: string;
  const steps: Entry[][] = [];
  before(async () => {
    dir = await makeTempDir('ferrymail-maildir-fsync-');
    root = join(dir, 'mailboxes');
    await mkdir(root);
    const log = join(dir, 'fsync.log');
    await promisify(execFile)(
      process.execPath,
      [
        '--import',
        './test/fixtures/record-directory-fsyncs.ts',
        'test/fixtures/maildir-deliveries.ts',
        root,
        JSON.stringify(STEPS),
      ],
      { cwd: repoRoot, env: { ...process.env, FERRYMAIL_FSYNC_LOG: log } },
    );
    let current: Entry[] | undefined;
    for (const line of (await readFile(log, 'utf8')).split('\n')) {
      const [what, path] = [line.slice(0, line.indexOf(' ')), line.slice(line.indexOf(' ') + 1)];
      if (what === 'step') {
        current = [];
        steps.push(current);
      } else if (what === 'delivered') current = undefined;
      else if (what === 'fsync-dir' || what === 'rename') {
        assert.ok(current, `a file operation outside any delivery: ${line}`);
        current.push({ what, path });
      }
    }
    assert.equal(steps.length, STEPS.length, 'every step ran');
  });
  after(() => removeDir(dir));

  const maildir = (address: string) => {
    const [local, domain] = address.split('@') as [string, string];
    return join(root, domain, local, 'Maildir');
  };
  /** The folders creating a mailbox must fsync: all it created, and the folder it created them in. */
  const created = (address: string, existing: 'root' | 'domain') => {
    const m = maildir(address);
    // tmp, new and cur in Maildir, Maildir in <local>, <local> in <domain>; <domain> in the root.
    const folders = [join(m, 'tmp'), join(m, 'new'), join(m, 'cur'), m, join(m, '..'), join(m, '../..')];
    if (existing === 'root') folders.push(root);
    return folders.sort();
  };
  const firstRename = (step: number) => steps[step]!.findIndex((e) => e.what === 'rename');

  for (const [step, path, address, existing] of [
    [0, 'writer threads', 'alice@example.test', 'root'],
    [3, 'streaming writer', 'carol@other.test', 'root'],
    [2, 'writer threads', 'bob@example.test', 'domain'],
    [5, 'streaming writer', 'dave@other.test', 'domain'],
    [6, 'writer threads (folders removed since)', 'alice@example.test', 'domain'],
    [7, 'streaming writer (folders removed since)', 'carol@other.test', 'domain'],
    [8, 'writer threads (3 copies at once)', 'erin@example.test', 'domain'],
    [9, 'streaming writer (3 copies at once)', 'frank@other.test', 'domain'],
  ] as const) {
    const where =
      existing === 'root'
        ? 'a new domain, up to the mailbox root'
        : "a known domain, up to the domain's folder";
    it(`${path}: a new mailbox in ${where} has each created folder fsynced once before any message goes in`, () => {
      const entries = steps[step]!;
      const before = entries.slice(0, firstRename(step));
      assert.ok(firstRename(step) > 0, 'a message was renamed into new/');
      assert.deepEqual(
        before.map((e) => `${e.what} ${e.path}`).sort(),
        created(address, existing).map((f) => `fsync-dir ${f}`),
      );
    });
    it(`${path}: the new mailbox's messages are made durable by a new/ fsync after their rename`, () => {
      const entries = steps[step]!;
      const rest = entries.slice(firstRename(step));
      const copies = STEPS[step]!.copies ?? 1;
      assert.deepEqual(
        rest.filter((e) => e.what === 'rename').map((e) => dirname(e.path)),
        Array.from({ length: copies }, () => join(maildir(address), 'new')),
      );
      for (const e of rest.filter((x) => x.what === 'fsync-dir'))
        assert.equal(e.path, join(maildir(address), 'new'));
      assert.deepEqual(entries.at(-1), { what: 'fsync-dir', path: join(maildir(address), 'new') });
    });
  }

  for (const [step, path, address] of [
    [1, 'writer threads', 'alice@example.test'],
    [4, 'streaming writer', 'carol@other.test'],
  ] as const) {
    it(`${path}: a later delivery into the mailbox fsyncs only new/, not the folders again`, () => {
      assert.deepEqual(
        steps[step]!.map((e) =>
          e.what === 'rename' ? `rename into ${dirname(e.path)}` : `fsync-dir ${e.path}`,
        ),
        [`rename into ${join(maildir(address), 'new')}`, `fsync-dir ${join(maildir(address), 'new')}`],
      );
    });
  }
});
