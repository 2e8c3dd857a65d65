/** The outbound SMTP client (docs/decisions/smtp-client.md). */
export {
  DEFAULT_TIMEOUTS,
  encodeOrcpt,
  type OutboundEnvelope,
  type OutboundRecipient,
  openSmtpConnection,
  type SecureState,
  type SmtpClientConnection,
  type SmtpClientOptions,
  type SmtpClientTimeouts,
  type TransactionResult,
} from './connection.ts';
export { SmtpClientError, type SmtpClientStage } from './errors.ts';
export { formatReply, type SmtpReply } from './reply.ts';
export { certificateNames, matchCertificate, nameMatches } from './tls-names.ts';
