import { z } from 'zod';
import { duration } from '../../config/units.ts';
import { parseIpRange } from '../../receive/ip-ranges.ts';

const ipRange = z
  .string()
  .min(1)
  .refine((r) => parseIpRange(r) !== undefined, 'expected an IP address, CIDR block or first-last range');

/**
 * Email authentication on receipt: SPF (MAIL FROM and HELO), DKIM, DMARC and ARC, one
 * Authentication-Results header per message, and the DMARC policy applied per this config.
 */
export const emailAuthenticationSchema = z.strictObject({
  enabled: z.boolean().default(true),
  /**
   * Receive connectors whose messages are checked. Absent: every connector where anonymous
   * senders may submit (mail from the internet), none of the submission connectors.
   */
  connectors: z.array(z.string().min(1)).optional(),
  /** Sessions that authenticated (AUTH) are not checked. */
  skipAuthenticated: z.boolean().default(true),
  /** Clients whose messages are not checked (internal relays, your own outbound gateways). */
  trustedRanges: z.array(ipRange).default([]),
  /** The whole verification of one message gives up after this (results `temperror`). */
  timeout: duration.default(10_000),
  dmarc: z
    .strictObject({
      /** What to do when DMARC fails and the domain asks for p=reject. */
      reject: z.enum(['reject', 'quarantine', 'ignore']).default('reject'),
      /** What to do when DMARC fails and the domain asks for p=quarantine. */
      quarantine: z.enum(['quarantine', 'ignore']).default('quarantine'),
    })
    .prefault({}),
  /** The header a quarantined message gets (value `dmarc-quarantine`), for Sieve or the mail client. */
  quarantineHeader: z
    .string()
    .regex(/^[!-9;-~]+$/, 'expected a header field name such as X-Ferrymail-Junk')
    .default('X-Ferrymail-Junk'),
});
export type EmailAuthenticationConfig = z.infer<typeof emailAuthenticationSchema>;
