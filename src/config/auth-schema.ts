import { z } from 'zod';
import { duration } from './units.ts';

/**
 * Configuration of receive-side authentication beyond passwords: SASL mechanisms, OAuth bearer
 * tokens, client certificates, the failed-login lockout and send-as rights (docs/security.md).
 * Kept apart from schema.ts, which assembles them.
 */

export const authMechanismSchema = z.enum(['PLAIN', 'LOGIN', 'CRAM-MD5', 'XOAUTH2', 'OAUTHBEARER']);
export type AuthMechanism = z.infer<typeof authMechanismSchema>;

/** An address, `@domain` (any address there), or `<>` (the null sender): what a mailbox may send as. */
export const sendAsEntrySchema = z
  .string()
  .regex(
    /^(<>|@[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*|[^\s@<>]+@[^\s@<>]+)$/i,
    'expected an address such as shared@example.test, a domain such as @example.test, or <> for the null sender',
  )
  .transform((a) => a.toLowerCase());

const loopback = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;

export const oauthSchema = z
  .strictObject({
    /** The `iss` every token must carry. */
    issuer: z.string().min(1),
    /** The `aud` a token must name (one of them, when a list). */
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    /** A JWKS file (JSON `{"keys": [...]}`), read at start. */
    jwksFile: z.string().optional(),
    /** A JWKS URL (https; http only on loopback, for labs), fetched when needed and cached. */
    jwksUrl: z
      .string()
      .refine((u) => {
        try {
          const url = new URL(u);
          return url.protocol === 'https:' || (url.protocol === 'http:' && loopback.test(url.hostname));
        } catch {
          return false;
        }
      }, 'expected an https URL such as https://login.example.test/.well-known/jwks.json')
      .optional(),
    /** The claim holding the mailbox's address. */
    claim: z.string().min(1).default('email'),
    /** The scope named in a failure challenge (RFC 7628 §3.2.2). */
    scope: z.string().optional(),
    /** Leeway for exp / nbf. */
    clockTolerance: duration.default(60_000),
    /** A fetched JWKS is used this long before it is fetched again. */
    jwksCacheMaxAge: duration.default(10 * 60_000),
  })
  .refine((o) => (o.jwksFile === undefined) !== (o.jwksUrl === undefined), {
    message: 'oauth needs exactly one of jwksFile or jwksUrl',
    path: ['jwksFile'],
  });
export type OAuthConfig = z.infer<typeof oauthSchema>;

const lockoutRuleSchema = (failures: number, window: number, lockFor: number) =>
  z
    .strictObject({
      /** Failed logins within `window` that lock; 0: never. */
      failures: z.number().int().nonnegative().default(failures),
      window: duration.default(window),
      /** How long the lock lasts. */
      duration: duration.default(lockFor),
    })
    .prefault({});

export const authLockoutSchema = z
  .strictObject({
    perIp: lockoutRuleSchema(20, 15 * 60_000, 30 * 60_000),
    perAccount: lockoutRuleSchema(10, 15 * 60_000, 15 * 60_000),
    /** Source IPs and accounts remembered at most (memory bound); the least recently failed are forgotten first. */
    maxEntries: z.number().int().positive().default(100_000),
  })
  .prefault({});
export type AuthLockoutConfig = z.infer<typeof authLockoutSchema>;

const certificateNameSchema = z
  .string()
  .regex(
    /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i,
    'expected a host name such as mx.partner.test or *.partner.test',
  );

export const clientCertificatesSchema = z.strictObject({
  /** PEM file of the CA certificate(s) client certificates must chain to. */
  caFile: z.string(),
  /** Refuse MAIL (530 5.7.0) from a client without a certificate from that CA. */
  required: z.boolean().default(false),
  /** The first entry whose names all match grants its group. */
  map: z
    .array(
      z.strictObject({
        match: z
          .strictObject({
            /** The certificate subject's CN. */
            subject: certificateNameSchema.optional(),
            /** A DNS name among its subjectAltNames. */
            san: certificateNameSchema.optional(),
          })
          .refine((m) => m.subject !== undefined || m.san !== undefined, 'expected subject, san or both'),
        group: z.enum(['partners', 'servers']),
      }),
    )
    .default([]),
});
export type ClientCertificatesConfig = z.infer<typeof clientCertificatesSchema>;
