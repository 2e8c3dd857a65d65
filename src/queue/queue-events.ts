import { type EventBus, type TrackingEventId, track } from '../observe/events.ts';
import type { QueuedMessage, QueuedRecipient } from './types.ts';

/**
 * A tracking event about recipients of a stored message that the queue itself decided on
 * (expiry, removal by an administrator, poison): source QUEUE, one status line per recipient.
 */
export function trackQueueEvent(
  bus: EventBus,
  eventId: Extract<TrackingEventId, 'FAIL' | 'DROP' | 'POISONMESSAGE'>,
  message: QueuedMessage,
  recipients: ReadonlyArray<Pick<QueuedRecipient, 'address' | 'lastResponse'>>,
  time: number,
  extra: { readonly detail?: string } = {},
): void {
  if (recipients.length === 0) return;
  track(bus, {
    time,
    eventId,
    source: 'QUEUE',
    internalId: message.id,
    ...(message.messageId !== undefined ? { messageId: message.messageId } : {}),
    sender: message.sender,
    returnPath: message.sender,
    recipients: recipients.map((r) => r.address),
    recipientStatus: recipients.map((r) => r.lastResponse ?? ''),
    size: message.size,
    ...(message.subject !== undefined ? { subject: message.subject } : {}),
    ...(extra.detail !== undefined ? { detail: extra.detail } : {}),
  });
}
