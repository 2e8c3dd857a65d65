import { hostname } from 'node:os';
import type { Config } from '../config/schema.ts';
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/logger.ts';
import type { EventBus } from '../observe/events.ts';
import type { DnsResolver } from '../routing/dns/resolver.ts';
import { dnsblAgent } from './connection/dnsbl.ts';
import { ipListsAgent } from './connection/ip-lists.ts';
import { rateLimitsAgent } from './connection/rate-limits.ts';
import { headerFirewallAgent } from './header-firewall.ts';
import { AgentPipeline } from './pipeline.ts';
import { senderFilterAgent } from './sender-filter.ts';
import { tarpitAgent } from './tarpit.ts';
import type { Agent } from './types.ts';

export { AgentPipeline } from './pipeline.ts';
export type * from './types.ts';

export interface BuildAgentsOptions {
  readonly resolver: Pick<DnsResolver, 'a' | 'txt'>;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The node's FQDN (the authserv-id of its Authentication-Results headers). */
  readonly nodeFqdn?: string;
  /** A user's own agents, called after the built-in ones. */
  readonly extra?: ReadonlyArray<Agent>;
  /** Where THROTTLE tracking events go (src/observe/events.ts). */
  readonly events?: EventBus;
}

/**
 * The built-in agents a config asks for, in Exchange's order on an edge node: connection
 * filtering (IP lists, rates, block lists) → sender filtering → recipient tarpit → the header
 * firewall (always on); then the user's own.
 */
export function builtInAgents(config: Pick<Config, 'agents' | 'node'>, options: BuildAgentsOptions): Agent[] {
  const a = config.agents;
  const agents: Agent[] = [];
  if (a.ipAllowList.length > 0 || a.ipBlockList.length > 0) {
    agents.push(ipListsAgent({ allow: a.ipAllowList, block: a.ipBlockList, clock: options.clock }));
  }
  const rates = a.rateLimits;
  if (rates.connectionsPerMinutePerSource !== undefined || rates.messagesPerMinutePerSource !== undefined) {
    agents.push(rateLimitsAgent({ ...rates, clock: options.clock }));
  }
  // Before every other RCPT handler: a refusal ends the event, and the delay must still apply.
  if (a.tarpit.afterRejectedRecipients !== undefined) {
    agents.push(tarpitAgent({ afterRejectedRecipients: a.tarpit.afterRejectedRecipients }));
  }
  if (a.dnsbl.providers.length > 0) {
    agents.push(
      dnsblAgent({
        providers: a.dnsbl.providers,
        rejectAt: a.dnsbl.rejectAt,
        timeout: a.dnsbl.timeout,
        resolver: options.resolver,
        logger: options.logger,
      }),
    );
  }
  const sf = a.senderFilter;
  if (sf.blockedSenders.length > 0 || sf.blockedDomains.length > 0 || sf.blockNullSender) {
    agents.push(senderFilterAgent(sf));
  }
  agents.push(headerFirewallAgent({ authservIds: [options.nodeFqdn ?? config.node.fqdn ?? hostname()] }));
  return agents;
}

/** The pipeline every receive session of the node runs: the built-in agents, then `extra`. */
export function createAgentPipeline(
  config: Pick<Config, 'agents' | 'node'>,
  options: BuildAgentsOptions,
): AgentPipeline {
  return new AgentPipeline({
    agents: [...builtInAgents(config, options), ...(options.extra ?? [])],
    logger: options.logger,
    failClosed: config.agents.failClosed,
    clock: options.clock,
    ...(options.events ? { events: options.events } : {}),
  });
}
