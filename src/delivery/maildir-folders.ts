import { mkdirSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fsyncDirectory, fsyncDirectorySync } from '../core/fsync.ts';

/**
 * Creating a mailbox's folders, durably. A new folder is an entry in its parent: until the parent
 * is fsynced, a power loss can take the folder away, and with it the first message renamed into
 * its new/ (which was fsynced, and reported delivered). So every folder a recursive mkdir created
 * is fsynced, and so is the parent of the first one (the folder that existed and gained an entry),
 * which is the mailbox root, or the domain's folder for a second mailbox of the domain.
 *
 * Shared by the streaming writer (promise calls) and the writer threads (synchronous calls).
 */

const SUBFOLDERS = ['tmp', 'new', 'cur'] as const;

/**
 * Folders created but not yet fsynced, because the fsync failed: the next attempt syncs them
 * too (its mkdir finds them existing and would not say so). One set per thread.
 */
const unsynced = new Set<string>();

/** Adds `path` and its ancestors down to `first` (what mkdir returned), and `first`'s parent. */
function addCreated(first: string | undefined, path: string): void {
  if (first === undefined) return;
  const top = resolve(first);
  for (let dir = resolve(path); ; dir = dirname(dir)) {
    unsynced.add(dir);
    if (dir === top || dirname(dir) === dir) break;
  }
  unsynced.add(dirname(top));
}

/** Deepest first, so a folder's entry is made durable after the folders it names. */
function toSync(): string[] {
  return [...unsynced].sort((a, b) => b.length - a.length);
}

/** Creates `<folder>/{tmp,new,cur}` (and what leads to them), fsyncing whatever it created. */
export async function makeMaildir(folder: string): Promise<void> {
  for (const sub of SUBFOLDERS) {
    const path = join(folder, sub);
    addCreated(await mkdir(path, { recursive: true, mode: 0o700 }), path);
  }
  for (const dir of toSync()) {
    await fsyncDirectory(dir);
    unsynced.delete(dir);
  }
}

/** The same, for the writer threads. */
export function makeMaildirSync(folder: string): void {
  for (const sub of SUBFOLDERS) {
    const path = join(folder, sub);
    addCreated(mkdirSync(path, { recursive: true, mode: 0o700 }), path);
  }
  for (const dir of toSync()) {
    fsyncDirectorySync(dir);
    unsynced.delete(dir);
  }
}
