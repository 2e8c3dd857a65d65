import type { DeliveryJob, QueuedMessage, QueuedRecipient } from '../../src/queue/types.ts';

/** A job as the scheduler hands it to the mailbox agent: every recipient routed to its mailbox. */
export function mailboxJob(sender: string, addresses: string[], size = 100): DeliveryJob {
  const recipients: QueuedRecipient[] = addresses.map((address, index) => ({
    index,
    address,
    nextHop: { type: 'mailbox', mailbox: address },
    status: 'active',
    attempts: 0,
    nextAttemptAt: 0,
    updatedAt: 0,
  }));
  const message: QueuedMessage = {
    id: 'TESTID',
    sender,
    receivedAt: 0,
    expiresAt: 0,
    size,
    dsn: {},
    bodyType: '8BITMIME',
    smtpUtf8: false,
    origin: { connector: 'x', clientIp: '127.0.0.1', clientHelo: 'x', tls: false },
    recipients,
  };
  return { message, recipients };
}
