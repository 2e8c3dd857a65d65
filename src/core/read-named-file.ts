import { readFile } from 'node:fs/promises';

/** A file the config names, read whole; an error that says what the file was for and why it failed. */
export async function readNamedFile(file: string, what: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new Error(
      `cannot read ${what} ${file}: ${code === 'ENOENT' ? 'no such file' : (code ?? String(error))}`,
    );
  }
}
