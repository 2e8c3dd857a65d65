import type { Readable, Writable } from 'node:stream';

/**
 * A password for `ferrymail passwd`: the first line of a pipe (scripts), or typed twice
 * without echo on a terminal.
 */
export async function readPassword(
  input: Readable & { isTTY?: boolean },
  prompts: Writable,
): Promise<string> {
  if (!input.isTTY) return firstLine(input);
  const first = await askHidden(input as NodeJS.ReadStream, prompts, 'Password: ');
  const second = await askHidden(input as NodeJS.ReadStream, prompts, 'Again: ');
  if (first !== second) throw Object.assign(new Error('the passwords differ'), { code: 'PASSWORDS_DIFFER' });
  return first;
}

async function firstLine(input: Readable): Promise<string> {
  let text = '';
  for await (const chunk of input) {
    text += (chunk as Buffer).toString('utf8');
    const end = text.search(/\r?\n/);
    if (end >= 0) return text.slice(0, end);
  }
  return text;
}

function askHidden(input: NodeJS.ReadStream, prompts: Writable, prompt: string): Promise<string> {
  return new Promise((resolve) => {
    prompts.write(prompt);
    input.setRawMode(true);
    input.resume();
    let text = '';
    const done = () => {
      input.off('data', onData);
      input.setRawMode(false);
      input.pause();
      prompts.write('\n');
    };
    const onData = (data: Buffer) => {
      for (const ch of data.toString('utf8')) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') {
          done();
          resolve(text);
          return;
        }
        if (ch === '\u0003') {
          // Ctrl-C: raw mode swallowed the signal, so leave the terminal sane and end as SIGINT would.
          done();
          process.exit(130);
        }
        text = ch === '\u007f' || ch === '\b' ? text.slice(0, -1) : text + ch;
      }
    };
    input.on('data', onData);
  });
}
