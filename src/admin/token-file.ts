import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDirectory } from '../core/fsync.ts';
import type { Logger } from '../core/logger.ts';

/** `<dataDir>/admin/token`: where the CLI on this host finds the token of the local node. */
export function localTokenPath(dataDir: string): string {
  return join(dataDir, 'admin', 'token');
}

const TOKEN = /^[A-Za-z0-9_-]{43}$/;

/**
 * Reads the local token, creating it when absent: 32 random bytes as base64url, in a 0700 folder,
 * mode 0600, written to a temporary file and renamed so a reader never sees half a token. A file
 * whose content is not a token (truncated, edited) is replaced; one with looser permissions is
 * tightened, since whoever can read it has the API.
 */
export async function loadOrCreateLocalToken(dataDir: string, logger: Logger): Promise<string> {
  const file = localTokenPath(dataDir);
  const folder = join(dataDir, 'admin');
  await mkdir(folder, { recursive: true, mode: 0o700 });
  await chmod(folder, 0o700);
  try {
    const existing = (await readFile(file, 'utf8')).trim();
    if (TOKEN.test(existing)) {
      const mode = (await stat(file)).mode & 0o777;
      if (mode !== 0o600) {
        logger.warn({ file, mode: mode.toString(8) }, 'admin token file was readable by others; set to 0600');
        await chmod(file, 0o600);
      }
      return existing;
    }
    logger.warn({ file }, 'admin token file holds no valid token; writing a new one');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const token = randomBytes(32).toString('base64url');
  const temporary = `${file}.${process.pid}.tmp`;
  const handle = await open(temporary, 'w', 0o600);
  try {
    await handle.chmod(0o600);
    await handle.writeFile(`${token}\n`);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
  await handle.close();
  await rename(temporary, file);
  await fsyncDirectory(folder);
  logger.info({ file }, 'admin token file created');
  return token;
}
