import { constants } from 'node:fs';
import { access, type FileHandle, open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fsyncDirectory } from '../core/fsync.ts';
import { makeMaildir } from './maildir-folders.ts';
import { uniqueName } from './maildir-format.ts';

/**
 * Maildir writer: tmp/ → fsync → new/ → fsync folder (the qmail/Dovecot protocol), so a
 * message is either completely in new/ or not there at all, and is on disk before we say so.
 *
 * Line endings are converted from the queue's CRLF to LF while streaming, as Postfix's
 * virtual(8) and Dovecot's LDA store them; the `,S=<size>` in the file name is the size of the
 * LF file, which Dovecot uses for its quota and size fields.
 */

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
const UNSAFE_IN_NAME = /[/\\\0\x01-\x1f\x7f]/;

/**
 * Folder names are derived from the address; anything that could leave the root (a separator, a
 * leading dot, so also `..`), or that no file system takes as a name, is refused rather than mapped:
 * two addresses must never share a mailbox.
 */
export function mailboxFolder(root: string, address: string): string | undefined {
  const at = address.lastIndexOf('@');
  if (at <= 0) return undefined;
  const local = address.slice(0, at).toLowerCase();
  const domain = address.slice(at + 1).toLowerCase();
  const safe = (part: string) =>
    part.length > 0 && Buffer.byteLength(part) <= 255 && !part.startsWith('.') && !UNSAFE_IN_NAME.test(part);
  if (!safe(local) || !safe(domain)) return undefined;
  return join(root, domain, local, 'Maildir');
}

/** Folders known to exist: creating them is checked once per mailbox, not once per message. */
const knownMaildirs = new Set<string>();
/** Mailboxes being created: deliveries that arrive meanwhile wait for the same creation. */
const creating = new Map<string, Promise<void>>();

/**
 * Makes sure a mailbox's folders exist and their entries are durable (makeMaildir) before a
 * message goes in. Both writers go through here, including the writer threads' jobs: a delivery
 * must not find the folders made by another one whose fsyncs have not finished. Undefined when
 * the folders are already known, so the common case costs no promise.
 */
export function ensureMaildir(folder: string): Promise<void> | undefined {
  if (knownMaildirs.has(folder)) return undefined;
  let made = creating.get(folder);
  if (!made) {
    made = makeMaildir(folder)
      .then(() => {
        knownMaildirs.add(folder);
      })
      .finally(() => creating.delete(folder));
    creating.set(folder, made);
  }
  return made;
}

/** Copies `source` to `file`, CRLF → LF, in chunks; returns the bytes written. */
async function writeLf(file: FileHandle, prefix: Buffer, source: Readable): Promise<number> {
  let size = 0;
  let pendingCr = false;
  const put = async (chunk: Buffer) => {
    const parts: Buffer[] = [];
    let start = 0;
    if (pendingCr) {
      // A CR ended the previous chunk: it is dropped if this one starts with LF.
      if (chunk[0] !== 0x0a) parts.push(CR_BYTE);
      pendingCr = false;
    }
    for (let cr = chunk.indexOf(0x0d); cr >= 0; cr = chunk.indexOf(0x0d, cr + 1)) {
      if (cr + 1 === chunk.length) {
        parts.push(chunk.subarray(start, cr));
        start = chunk.length;
        pendingCr = true;
        break;
      }
      if (chunk[cr + 1] === 0x0a) {
        parts.push(chunk.subarray(start, cr));
        start = cr + 1;
      }
    }
    if (start < chunk.length) parts.push(chunk.subarray(start));
    const out = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    if (out.length > 0) {
      await writeFully(file, out);
      size += out.length;
    }
  };
  await put(prefix);
  for await (const chunk of source) await put(chunk as Buffer);
  if (pendingCr) {
    await writeFully(file, CR_BYTE);
    size++;
  }
  return size;
}

const CR_BYTE = Buffer.from([0x0d]);

/**
 * A write may be short (a disk that fills up mid-write does that before it fails): the rest is
 * written again, so the next attempt reports ENOSPC instead of the file being silently cut.
 */
async function writeFully(file: FileHandle, data: Buffer): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await file.write(data, offset, data.length - offset);
    offset += bytesWritten;
  }
}

/** Delivers one copy into a Maildir; resolves with the file name in new/ once it is durable. */
export async function deliverToMaildir(
  folder: string,
  prefix: Buffer,
  body: Readable,
  now: number,
): Promise<string> {
  try {
    await ensureMaildir(folder);
    // The folders may be cached as existing but removed since: check the one we write into.
    await access(join(folder, 'tmp')).catch(async () => {
      knownMaildirs.delete(folder);
      await ensureMaildir(folder);
    });
  } catch (error) {
    body.destroy();
    throw error;
  }
  const name = uniqueName(now);
  const tmpPath = join(folder, 'tmp', name);
  let file: FileHandle | undefined;
  try {
    file = await open(tmpPath, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600);
    const size = await writeLf(file, prefix, body);
    await file.sync();
    await file.close();
    file = undefined;
    const finalName = `${name},S=${size}`;
    await rename(tmpPath, join(folder, 'new', finalName));
    await fsyncFolder(join(folder, 'new'));
    return finalName;
  } catch (error) {
    body.destroy();
    await file?.close().catch(() => undefined);
    await unlink(tmpPath).catch(() => undefined);
    throw error;
  }
}

/**
 * Folder fsyncs asked for while one of the same folder is running share the next one: under
 * load, many deliveries into one mailbox pay for one folder fsync. (A request must not join the
 * running fsync: that one may have started before its rename.)
 */
class FolderSync {
  #running: Promise<void> | undefined;
  #queued: Promise<void> | undefined;
  readonly #path: string;
  readonly #onIdle: () => void;

  constructor(path: string, onIdle: () => void) {
    this.#path = path;
    this.#onIdle = onIdle;
  }

  run(): Promise<void> {
    if (!this.#running) {
      this.#running = fsyncDirectory(this.#path).finally(() => {
        this.#running = undefined;
        if (!this.#queued) this.#onIdle();
      });
      return this.#running;
    }
    this.#queued ??= this.#running
      .catch(() => undefined)
      .then(() => {
        this.#queued = undefined;
        return this.run();
      });
    return this.#queued;
  }
}

const folderSyncs = new Map<string, FolderSync>();

function fsyncFolder(path: string): Promise<void> {
  let sync = folderSyncs.get(path);
  if (!sync) {
    sync = new FolderSync(path, () => folderSyncs.delete(path));
    folderSyncs.set(path, sync);
  }
  return sync.run();
}
