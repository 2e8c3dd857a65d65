import { pino } from 'pino';

export type Logger = pino.Logger;

/** JSON logs on stdout; `silent` in tests unless FERRYMAIL_LOG is set. */
export function createLogger(level: string, name = 'ferrymail'): Logger {
  return pino({ name, level: process.env.FERRYMAIL_LOG ?? level });
}

export const silentLogger: Logger = pino({ level: 'silent' });
