import { isIP } from 'node:net';
import { PassThrough } from 'node:stream';
import type { ARCResult, DKIMVerifyResult, DMARCResult, SPFResult } from 'mailauth';
import { arc, dkimVerify, dmarc, spf } from 'mailauth';
import type { Permission, ReceiveConnectorConfig } from '../../config/schema.ts';
import type { Logger } from '../../core/logger.ts';
import type { AuthResults } from '../../queue/types.ts';
import { type IpRange, normalizeIp, parseIpRange } from '../../receive/ip-ranges.ts';
import { type Reply, reply } from '../../smtp/reply.ts';
import type { EmailAuthenticationConfig } from './config.ts';
import { type AuthDns, type MailauthResolver, mailauthResolver } from './dns-adapter.ts';

/** What is known about a message when its content starts. */
export interface AuthSubject {
  readonly sessionId: string;
  readonly connector: ReceiveConnectorConfig;
  readonly remoteIp: string;
  readonly helo: string;
  /** The reverse path; '' for `<>`. */
  readonly sender: string;
  readonly authUser: string | undefined;
  readonly permissions: ReadonlySet<Permission>;
}

/** The outcome for one message: never a reason to lose it, at most a reason to refuse it. */
export interface AuthVerdict {
  /** Complete header fields (no line ending) to put at the top of the stored message. */
  readonly headers: ReadonlyArray<string>;
  readonly results: AuthResults;
  /** Set when the DMARC policy, as configured, refuses the message (550 5.7.1). */
  readonly reject?: Reply;
}

/** One message being verified while it streams to the queue. */
export interface MessageVerification {
  /** Feeds the message as received (without our own trace header); waits for the verifier to keep up. */
  write(chunk: Buffer): Promise<void>;
  /** The message is complete: the verdict, within the configured timeout. Never throws. */
  finish(): Promise<AuthVerdict>;
  /** The message was refused or the client went away: stop, quietly. */
  abort(): void;
}

/** The receive session's hook: one verification per message, or none for a session not checked. */
export interface MessageAuthenticator {
  begin(subject: AuthSubject): MessageVerification | undefined;
}

export interface EmailAuthenticatorOptions {
  readonly config: EmailAuthenticationConfig;
  readonly dns: AuthDns;
  /** The node's FQDN: the authserv-id of the Authentication-Results header. */
  readonly authservId: string;
  readonly logger: Logger;
}

const STREAM_HIGH_WATER = 64 * 1024;

/**
 * SPF (RFC 7208, MAIL FROM and HELO), DKIM (RFC 6376, every signature), DMARC (mailauth follows
 * RFC 9989, DMARCbis, which replaced RFC 7489's Public Suffix List with a DNS Tree Walk for the
 * organizational domain) and ARC (RFC 8617), through mailauth, on the bytes as they stream in.
 *
 * SPF starts when the content starts; DKIM and ARC read the content as the queue stores it
 * (mailauth keeps the header section and hash states, not the body); DMARC follows at the end.
 * A problem (DNS failure, timeout, a bug in the library) gives `temperror` and is logged; the
 * message is stored all the same. Only the DMARC policy, where the config honours it, refuses.
 */
export class EmailAuthenticator implements MessageAuthenticator {
  readonly #config: EmailAuthenticationConfig;
  readonly #resolver: MailauthResolver;
  readonly #authservId: string;
  readonly #logger: Logger;
  readonly #trusted: IpRange[];

  constructor(options: EmailAuthenticatorOptions) {
    this.#config = options.config;
    this.#resolver = mailauthResolver(options.dns);
    this.#authservId = options.authservId;
    this.#logger = options.logger;
    this.#trusted = options.config.trustedRanges.flatMap((r) => parseIpRange(r) ?? []);
  }

  /** Whether messages of this session are checked, and why not. */
  skipReason(subject: AuthSubject): string | undefined {
    const c = this.#config;
    if (!c.enabled) return 'disabled';
    const onConnector =
      c.connectors === undefined
        ? (subject.connector.permissionGroups.anonymous ?? []).includes('submit')
        : c.connectors.includes(subject.connector.name);
    if (!onConnector) return 'connector';
    if (subject.authUser !== undefined && c.skipAuthenticated) return 'authenticated';
    if (subject.permissions.has('bypassAntiSpam')) return 'bypassAntiSpam';
    const ip = normalizeIp(subject.remoteIp);
    if (this.#trusted.some((r) => r.contains(ip))) return 'trusted';
    return undefined;
  }

  /** Starts verifying one message; undefined when this session's messages are not checked. */
  begin(subject: AuthSubject): MessageVerification | undefined {
    if (this.skipReason(subject) !== undefined) return undefined;
    return new Verification(subject, {
      config: this.#config,
      resolver: this.#resolver,
      authservId: this.#authservId,
      logger: this.#logger,
    });
  }
}

interface VerificationSettings {
  readonly config: EmailAuthenticationConfig;
  readonly resolver: MailauthResolver;
  readonly authservId: string;
  readonly logger: Logger;
}

class Verification implements MessageVerification {
  readonly #subject: AuthSubject;
  readonly #s: VerificationSettings;
  readonly #stream = new PassThrough({ highWaterMark: STREAM_HIGH_WATER });
  readonly #spf: Promise<SPFResult | undefined>;
  readonly #spfHelo: Promise<SPFResult | undefined>;
  readonly #dkim: Promise<DKIMVerifyResult | undefined>;
  #broken: unknown;
  #done = false;

  constructor(subject: AuthSubject, settings: VerificationSettings) {
    this.#subject = subject;
    this.#s = settings;
    const resolver = settings.resolver as never;
    const ip = normalizeIp(subject.remoteIp);
    const bare = subject.helo.replace(/^\[|\]$/g, '').replace(/^ipv6:/i, '');
    const heloIsName = bare !== '' && isIP(bare) === 0;
    const helo = heloIsName ? subject.helo : `[${ip}]`;
    const base = { ip, helo, mta: settings.authservId, resolver, maxElapsedTime: settings.config.timeout };
    // Without a reverse path the MAIL FROM check is the HELO check (RFC 7208 §2.4).
    this.#spf = this.#guard('spf', spf({ ...base, sender: subject.sender }));
    this.#spfHelo =
      subject.sender !== '' && heloIsName
        ? this.#guard('spf (helo)', spf({ ...base, sender: '' }))
        : Promise.resolve(undefined);
    this.#dkim = this.#guard('dkim', dkimVerify(this.#stream, { resolver, sender: subject.sender }));
    this.#stream.on('error', (error) => {
      this.#broken ??= error;
    });
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.#done || this.#broken !== undefined || this.#stream.destroyed) return;
    if (this.#stream.write(chunk)) return;
    // A verifier that stops reading must not stall the session: after the timeout it is dropped
    // (its results are temperror) and the message goes on to the queue alone.
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#stream.off('drain', done);
        this.#stream.off('close', done);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#broken ??= new Error('the verifier stopped reading the message');
        this.#s.logger.warn(
          { session: this.#subject.sessionId },
          'email authentication stalled; results temperror',
        );
        this.#stream.destroy();
        done();
      }, this.#s.config.timeout);
      this.#stream.on('drain', done);
      this.#stream.on('close', done);
    });
  }

  abort(): void {
    if (this.#done) return;
    this.#done = true;
    this.#stream.destroy();
  }

  async finish(): Promise<AuthVerdict> {
    this.#done = true;
    this.#stream.end();
    const timeout = this.#s.config.timeout;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeout);
    });
    try {
      const outcome = await Promise.race([this.#evaluate(), expired]);
      if (outcome !== 'timeout') return outcome;
      this.#s.logger.warn(
        { session: this.#subject.sessionId, timeoutMs: timeout },
        'email authentication timed out; results temperror',
      );
      this.#stream.destroy();
      return this.#temperror(`verification timed out after ${timeout} ms`);
    } catch (error) {
      this.#s.logger.error({ err: error, session: this.#subject.sessionId }, 'email authentication failed');
      return this.#temperror('verification failed');
    } finally {
      clearTimeout(timer);
    }
  }

  /** Logs a check that threw (mailauth turns DNS problems into results, so this is a bug) as temperror. */
  #guard<T>(what: string, work: Promise<T>): Promise<T | undefined> {
    return work.catch((error: unknown) => {
      if (!this.#done || !this.#stream.destroyed) {
        this.#s.logger.warn(
          { err: error, session: this.#subject.sessionId, check: what },
          'email authentication check failed',
        );
      }
      return undefined;
    });
  }

  async #evaluate(): Promise<AuthVerdict> {
    const resolver = this.#s.resolver as never;
    const [spfResult, heloResult, dkimResult] = await Promise.all([this.#spf, this.#spfHelo, this.#dkim]);
    const arcResult: ARCResult | undefined = dkimResult?.arc
      ? await this.#guard(
          'arc',
          arc(dkimResult.arc as never, { resolver, ip: normalizeIp(this.#subject.remoteIp) }),
        )
      : undefined;
    let dmarcResult: DMARCResult | false | undefined;
    if (dkimResult && dkimResult.headerFrom.length > 0) {
      dmarcResult = await this.#guard(
        'dmarc',
        dmarc({
          headerFrom: dkimResult.headerFrom,
          fromFields: dkimResult.fromFields,
          spfDomains: spfResult?.status.result === 'pass' && spfResult.domain ? [spfResult.domain] : [],
          dkimDomains: dkimResult.results
            .filter((r) => r.status.result === 'pass' && r.signingDomain)
            .map((r) => ({
              ...(r.id !== undefined ? { id: r.id } : {}),
              domain: r.signingDomain ?? '',
              ...(r.status.underSized ? { underSized: r.status.underSized } : {}),
            })),
          ...(arcResult ? { arcResult } : {}),
          resolver,
        }),
      );
    }

    const infos: string[] = [];
    const spfWord = spfResult?.status.result ?? 'temperror';
    infos.push(spfResult?.info ?? `spf=temperror smtp.mailfrom=${this.#subject.sender || 'postmaster'}`);
    if (heloResult) infos.push(`spf=${heloResult.status.result} smtp.helo=${this.#subject.helo}`);
    const signatures = (dkimResult?.results ?? []).map(bodyHashFails);
    if (!dkimResult) infos.push('dkim=temperror');
    else if (signatures.length === 0) infos.push('dkim=none');
    else for (const r of signatures) infos.push(r.info);
    const dkimWord = !dkimResult
      ? 'temperror'
      : signatures.length === 0
        ? 'none'
        : signatures.some((r) => r.status.result === 'pass')
          ? 'pass'
          : signatures[0]!.status.result;
    // No verdict at all (the DKIM pass that reads the header section failed) is temperror; a
    // message without a usable From: (none or several) or a domain without a record is none.
    let dmarcWord: string;
    if (!dkimResult) dmarcWord = 'temperror';
    else if (dkimResult.headerFrom.length === 0 || dmarcResult === false) dmarcWord = 'none';
    else if (dmarcResult === undefined) dmarcWord = 'temperror';
    else dmarcWord = dmarcResult.status.result;
    if (dmarcResult) infos.push(dmarcResult.info as string);
    else infos.push(`dmarc=${dmarcWord}`);
    const arcWord = arcResult?.status.result ?? (dkimResult ? 'none' : 'temperror');
    infos.push(arcResult?.info ?? `arc=${arcWord}`);

    const policy = dmarcResult && dmarcWord === 'fail' ? (dmarcResult.policy as string) : undefined;
    const fromDomain = dmarcResult ? dmarcResult.status.header?.from : undefined;
    let action: 'reject' | 'quarantine' | undefined;
    if (policy === 'reject')
      action = this.#s.config.dmarc.reject === 'ignore' ? undefined : this.#s.config.dmarc.reject;
    else if (policy === 'quarantine')
      action = this.#s.config.dmarc.quarantine === 'ignore' ? undefined : 'quarantine';

    const results: AuthResults = {
      spf: spfWord,
      ...(heloResult ? { spfHelo: heloResult.status.result } : {}),
      dkim: dkimWord,
      dmarc: dmarcWord,
      arc: arcWord,
      ...(dmarcResult ? { dmarcPolicy: dmarcResult.policy as string } : {}),
      ...(typeof fromDomain === 'string' ? { fromDomain } : {}),
      ...(action ? { action } : {}),
    };
    this.#s.logger.info({ session: this.#subject.sessionId, auth: results }, 'email authentication');
    const headers = [authenticationResults(this.#s.authservId, infos)];
    if (action === 'quarantine') headers.push(`${this.#s.config.quarantineHeader}: dmarc-quarantine`);
    if (action === 'reject') {
      const domain = typeof fromDomain === 'string' ? fromDomain : 'the sender domain';
      return {
        headers,
        results,
        reject: reply(
          550,
          '5.7.1',
          `Message rejected: DMARC policy of ${sanitize(domain)} (p=reject) not met: SPF and DKIM do not authenticate the From domain`,
        ),
      };
    }
    return { headers, results };
  }

  #temperror(why: string): AuthVerdict {
    const results: AuthResults = {
      spf: 'temperror',
      dkim: 'temperror',
      dmarc: 'temperror',
      arc: 'temperror',
    };
    const comment = `(${why})`;
    return {
      headers: [
        authenticationResults(this.#s.authservId, [
          `spf=temperror ${comment}`,
          `dkim=temperror ${comment}`,
          `dmarc=temperror ${comment}`,
          `arc=temperror ${comment}`,
        ]),
      ],
      results,
    };
  }
}

type DkimSignatureResult = DKIMVerifyResult['results'][number];

/**
 * A body hash that does not match is a PERMFAIL (RFC 6376 §6.1.3), which RFC 8601 §2.7.1 reports
 * as `fail`; mailauth's lenient mode says `neutral` (its strict mode says fail, but would also
 * refuse much else that real mail gets wrong). Only this case is corrected.
 */
function bodyHashFails(r: DkimSignatureResult): DkimSignatureResult {
  if (r.status.result !== 'neutral' || r.status.comment !== 'body hash did not verify') return r;
  return {
    ...r,
    status: { ...r.status, result: 'fail' },
    info: r.info.replace(/^dkim=neutral/, 'dkim=fail'),
  };
}

/** `Authentication-Results: <authserv-id>; <resinfo>; …` (RFC 8601), one resinfo per folded line. */
export function authenticationResults(authservId: string, infos: ReadonlyArray<string>): string {
  const lines = infos.map((info) => fold(sanitize(info)));
  return `Authentication-Results: ${authservId};\r\n\t${lines.join(';\r\n\t')}`;
}

/** Nothing from the wire gets a line break or control character into a header. */
function sanitize(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control characters is the point
  return text.replace(/[\x00-\x1f\x7f]+/g, ' ');
}

/** Folds at spaces so that no line of a resinfo passes 78 columns where it can be avoided. */
function fold(text: string): string {
  const words = text.split(' ');
  const out: string[] = [];
  let line = '';
  for (const w of words) {
    if (line !== '' && line.length + 1 + w.length > 76) {
      out.push(line);
      line = w;
    } else line = line === '' ? w : `${line} ${w}`;
  }
  if (line !== '') out.push(line);
  return out.join('\r\n\t ');
}
