import { parentPort, workerData } from 'node:worker_threads';
import { openWriter, type WriteBatch } from './sqlite-writer.ts';

/** Worker thread entry: applies write batches for the SQLite queue store, one at a time. */
const { path, maxDatabaseSize } = workerData as { path: string; maxDatabaseSize?: number };
const writer = openWriter(path, maxDatabaseSize);

parentPort!.on('message', (message: { id: number; batch?: WriteBatch; close?: true }) => {
  if (message.close) {
    writer.close();
    parentPort!.close();
    return;
  }
  try {
    parentPort!.postMessage({ id: message.id, ok: true, result: writer.write(message.batch!) });
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { errcode?: number };
    parentPort!.postMessage({
      id: message.id,
      ok: false,
      message: e.message,
      code: e.code ?? String(e.errcode ?? ''),
    });
  }
});
