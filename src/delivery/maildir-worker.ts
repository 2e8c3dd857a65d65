import { closeSync, constants, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort } from 'node:worker_threads';
import { fsyncDirectorySync } from '../core/fsync.ts';
import { makeMaildirSync } from './maildir-folders.ts';
import { crlfToLf, uniqueName } from './maildir-format.ts';

/**
 * A Maildir writer thread. Synchronous file calls here block only this thread, and cost far
 * less CPU than the promise-based calls would on the event loop that serves SMTP sessions.
 */

export interface WriteJob {
  readonly id: number;
  readonly folder: string;
  readonly prefix: Uint8Array;
  readonly body: Uint8Array;
  readonly now: number;
}

const known = new Set<string>();

/** Writes the file and renames it into new/; the folder fsync that makes it durable is the caller's. */
function deliver(job: WriteJob): string {
  try {
    return deliverOnce(job);
  } catch (error) {
    // The folders were known but someone removed them: make them again, once.
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || !known.delete(job.folder)) throw error;
    return deliverOnce(job);
  }
}

function deliverOnce(job: WriteJob): string {
  if (!known.has(job.folder)) {
    // The caller made the folders durable before sending the job (ensureMaildir); this makes
    // them again, as durably, if they were removed since.
    makeMaildirSync(job.folder);
    known.add(job.folder);
  }
  const name = uniqueName(job.now);
  const tmpPath = join(job.folder, 'tmp', name);
  const content = crlfToLf(Buffer.concat([job.prefix, job.body]));
  const fd = openSync(tmpPath, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600);
  try {
    let written = 0;
    while (written < content.length) written += writeSync(fd, content, written);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    try {
      unlinkSync(tmpPath);
    } catch {
      // Already gone.
    }
    throw error;
  }
  closeSync(fd);
  const finalName = `${name},S=${content.length}`;
  try {
    renameSync(tmpPath, join(job.folder, 'new', finalName));
  } catch (error) {
    try {
      unlinkSync(tmpPath);
    } catch {
      // Already gone.
    }
    throw error;
  }
  return finalName;
}

interface Reply {
  id: number;
  ok: boolean;
  name?: string;
  code?: string;
  message?: string;
}

function failure(id: number, error: unknown): Reply {
  const e = error as NodeJS.ErrnoException;
  return { id, ok: false, code: e.code ?? 'EUNKNOWN', message: e.message };
}

/**
 * Copies of one batch that went into the same mailbox share one fsync of its new/ folder (a group
 * commit): no copy is reported delivered before that fsync, and if it fails none of them is.
 */
parentPort?.on('message', (jobs: WriteJob[]) => {
  const replies: Reply[] = [];
  const renamedInto = new Map<string, Reply[]>();
  for (const job of jobs) {
    try {
      const reply: Reply = { id: job.id, ok: true, name: deliver(job) };
      replies.push(reply);
      const folder = join(job.folder, 'new');
      const group = renamedInto.get(folder);
      if (group) group.push(reply);
      else renamedInto.set(folder, [reply]);
    } catch (error) {
      replies.push(failure(job.id, error));
    }
  }
  for (const [folder, group] of renamedInto) {
    try {
      fsyncDirectorySync(folder);
    } catch (error) {
      for (const reply of group) Object.assign(reply, failure(reply.id, error), { name: undefined });
    }
  }
  parentPort!.postMessage(replies);
});
