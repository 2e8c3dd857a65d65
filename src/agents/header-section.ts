import type { HeaderRemoval } from './types.ts';

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const HT = 0x09;

/**
 * Holds back the header section of a message as it streams past, until the empty line that ends
 * it: then the end-of-headers agents see it and their directives are applied to those bytes alone.
 * The body behind it is never held: it goes on as it comes. What is held is bounded by the
 * connector's maxHeaderSize (the session refuses the message beyond it).
 *
 * Lines end at LF, as in the header scanner: a line that is empty, or only a CR, ends the section.
 */
export class HeaderSection {
  #parts: Buffer[] = [];
  #held = 0;
  #lineBytes = 0;
  #lineWasCr = false;
  #done = false;

  /** Bytes held back so far. */
  get held(): number {
    return this.#held;
  }

  get done(): boolean {
    return this.#done;
  }

  /**
   * Takes decoded content. While the section goes on, it is held and undefined is returned; the
   * chunk that completes it returns the whole section and what followed it in that chunk.
   */
  push(chunk: Buffer): { headers: Buffer; rest: Buffer } | undefined {
    if (this.#done) return { headers: Buffer.alloc(0), rest: chunk };
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (b === LF) {
        const empty = this.#lineBytes === 0 || (this.#lineBytes === 1 && this.#lineWasCr);
        this.#lineBytes = 0;
        this.#lineWasCr = false;
        if (empty) {
          this.#keep(chunk.subarray(0, i + 1));
          return { headers: this.#take(), rest: chunk.subarray(i + 1) };
        }
        continue;
      }
      this.#lineBytes++;
      this.#lineWasCr = b === CR;
    }
    this.#keep(chunk);
    return undefined;
  }

  /** The message ended inside its header section (no body): everything held. */
  finish(): Buffer {
    return this.#take();
  }

  #keep(bytes: Buffer): void {
    if (bytes.length === 0) return;
    // Copied: the caller's buffer may be reused once it has been handed over.
    this.#parts.push(Buffer.from(bytes));
    this.#held += bytes.length;
  }

  #take(): Buffer {
    this.#done = true;
    const all = Buffer.concat(this.#parts);
    this.#parts = [];
    this.#held = 0;
    return all;
  }
}

/** One header field as received: its bytes (continuation lines included), name and unfolded value. */
export interface HeaderField {
  readonly raw: Buffer;
  /** Lower-cased; '' for lines that are not a field (a stray continuation, the closing empty line). */
  readonly name: string;
  readonly value: string;
}

/** Splits a header section into its fields, keeping every byte (the closing empty line is a field with no name). */
export function splitFields(section: Buffer): HeaderField[] {
  const lines: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < section.length; i++) {
    if (section[i] === LF) {
      lines.push(section.subarray(start, i + 1));
      start = i + 1;
    }
  }
  if (start < section.length) lines.push(section.subarray(start));
  const fields: HeaderField[] = [];
  let current: Buffer[] = [];
  const close = () => {
    if (current.length === 0) return;
    const raw = Buffer.concat(current);
    current = [];
    const text = raw.toString('utf8');
    const colon = text.indexOf(':');
    const first = raw[0];
    const isField = colon > 0 && first !== SP && first !== HT && !/[\s]/.test(text.slice(0, colon).trim());
    fields.push({
      raw,
      name: isField ? text.slice(0, colon).trim().toLowerCase() : '',
      value: isField ? text.slice(colon + 1).replace(/\r?\n/g, '') : '',
    });
  };
  for (const line of lines) {
    const first = line[0];
    const continuation = (first === SP || first === HT) && current.length > 0;
    if (!continuation) close();
    current.push(line);
  }
  close();
  return fields;
}

function removes(removal: HeaderRemoval, field: HeaderField): boolean {
  if (field.name === '') return false;
  const wanted = removal.name.toLowerCase();
  const named = wanted.endsWith('*') ? field.name.startsWith(wanted.slice(0, -1)) : field.name === wanted;
  return named && (removal.matches === undefined || removal.matches(field.value));
}

/**
 * The header section with the removed fields left out and the added ones in front. A field is
 * removed when any removal names it (a name ending in `*` is a prefix) and its `matches` agrees.
 */
export function editSection(
  section: Buffer,
  addHeaders: ReadonlyArray<string>,
  removeHeaders: ReadonlyArray<HeaderRemoval>,
): { bytes: Buffer; removed: string[] } {
  const removed: string[] = [];
  const out: Buffer[] = addHeaders.map((h) => Buffer.from(`${h.replace(/\r?\n$/, '')}\r\n`));
  if (removeHeaders.length === 0) {
    out.push(section);
    return { bytes: Buffer.concat(out), removed };
  }
  for (const field of splitFields(section)) {
    if (removeHeaders.some((r) => removes(r, field))) removed.push(field.name);
    else out.push(field.raw);
  }
  return { bytes: Buffer.concat(out), removed };
}
