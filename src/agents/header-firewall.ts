import { type Agent, CONTINUE, type HeaderRemoval } from './types.ts';

/** Ferrymail's own trust headers: only this node (or a trusted source) may set them. */
export const TRUST_HEADER_PREFIX = 'x-ferrymail-';

/**
 * The authserv-id an Authentication-Results value starts with (RFC 8601 §2.2), lower-cased,
 * after any comments; undefined when there is none.
 */
export function authservId(value: string): string | undefined {
  const m = /^\s*(?:\((?:[^()\\]|\\.)*\)\s*)*(?:"((?:[^"\\]|\\.)*)"|([^\s;()]+))/.exec(value);
  const id = m?.[1] ?? m?.[2];
  return id === undefined ? undefined : id.toLowerCase().replace(/\.$/, '');
}

/**
 * The header firewall, always on: from a session without the acceptRoutingHeaders permission it
 * strips every `X-Ferrymail-*` header and every Authentication-Results header that claims to come
 * from this node (its authserv-id is our FQDN): such headers from outside are forged.
 */
export function headerFirewallAgent(options: { authservIds: ReadonlyArray<string> }): Agent {
  const configured = options.authservIds.map((id) => id.toLowerCase().replace(/\.$/, ''));
  return {
    name: 'headerFirewall',
    endOfHeaders({ session }) {
      if (session.permissions.has('acceptRoutingHeaders')) return CONTINUE;
      const ours = new Set([...configured, session.localFqdn.toLowerCase().replace(/\.$/, '')]);
      const removeHeaders: HeaderRemoval[] = [
        { name: `${TRUST_HEADER_PREFIX}*` },
        {
          name: 'authentication-results',
          matches: (value) => {
            const id = authservId(value);
            return id !== undefined && ours.has(id);
          },
        },
      ];
      return { action: 'editHeaders', removeHeaders };
    },
  };
}
