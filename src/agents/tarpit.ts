import { type Agent, tarpit } from './types.ts';

/**
 * Slows down recipient harvesting: once a session has had `afterRejectedRecipients` RCPTs
 * refused, every further RCPT reply waits the connector's tarpitInterval.
 */
export function tarpitAgent(options: { afterRejectedRecipients: number }): Agent {
  return {
    name: 'tarpit',
    rcpt({ session }) {
      const interval = session.connector.limits.tarpitInterval;
      if (interval <= 0 || session.rejectedRecipients < options.afterRejectedRecipients) return undefined;
      return tarpit(interval);
    },
  };
}
