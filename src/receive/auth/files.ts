import type { Config } from '../../config/schema.ts';
import { systemClock } from '../../core/clock.ts';
import { ClientCertificateTrust } from './client-certificates.ts';
import { OAuthVerifier } from './oauth.ts';

/**
 * The authentication files a config names that cannot be used (a client-certificate CA file, an
 * OAuth JWKS file), each at its field, so that a node refuses to start with a located error
 * instead of failing later.
 */
export async function authFileProblems(
  config: Config,
): Promise<Array<{ path: PropertyKey[]; message: string }>> {
  const problems: Array<{ path: PropertyKey[]; message: string }> = [];
  for (const [i, c] of config.receiveConnectors.entries()) {
    const clients = c.tls.clientCertificates;
    if (!c.enabled || c.tls.mode === 'none' || !clients) continue;
    try {
      await ClientCertificateTrust.load(clients);
    } catch (error) {
      problems.push({
        path: ['receiveConnectors', i, 'tls', 'clientCertificates', 'caFile'],
        message: (error as Error).message,
      });
    }
  }
  if (config.oauth?.jwksFile !== undefined) {
    try {
      await OAuthVerifier.create(config.oauth, systemClock);
    } catch (error) {
      problems.push({ path: ['oauth', 'jwksFile'], message: (error as Error).message });
    }
  }
  return problems;
}
