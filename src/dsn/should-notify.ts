import type { QueuedMessage, QueuedRecipient } from '../queue/types.ts';
import type { DsnKind } from './types.ts';

const KEYWORD = { failure: 'FAILURE', delay: 'DELAY', success: 'SUCCESS' } as const;

/**
 * RFC 3461 §4.1 and §5.2: whether the sender asked for (or by default gets) this notification.
 * A null reverse-path never gets one, so reports cannot loop.
 */
export function shouldNotify(
  kind: DsnKind,
  recipient: Pick<QueuedRecipient, 'notify'>,
  message: Pick<QueuedMessage, 'sender'>,
): boolean {
  if (message.sender === '') return false;
  const notify = recipient.notify;
  if (notify === undefined) return kind !== 'success';
  if (notify === 'NEVER') return false;
  return notify.includes(KEYWORD[kind]);
}
