import type { SmtpClientConnection } from './client/index.ts';

/**
 * Outbound connections, counted against three limits (node, send connector, destination) and
 * kept open between messages for the same destination, as Exchange does (up to
 * maxMessagesPerConnection transactions, then a fresh connection).
 *
 * A *slot* is one open connection, idle or busy. A job that finds an idle connection for its
 * destination takes it (with its slot); otherwise it waits until it may open a new one. When
 * only the node-wide limit stands in the way, an idle connection to another destination is
 * closed to make room, so idle connections never starve busy destinations.
 */

export interface SlotLimits {
  /** The send connector's name. */
  readonly connector: string;
  readonly maxPerConnector: number;
  readonly maxPerDestination: number;
  readonly maxMessagesPerConnection: number;
  /** How long an idle connection is kept for the next message. */
  readonly idleTimeout: number;
}

export interface Lease {
  /** An idle connection taken over from an earlier job, if there was one. */
  readonly reused: SmtpClientConnection | undefined;
  /**
   * Gives the slot back. With a usable connection that has not reached its transaction limit,
   * it is parked for the next job; otherwise it is closed politely (QUIT) in the background.
   */
  release(connection: SmtpClientConnection | undefined): void;
}

interface Idle {
  readonly connection: SmtpClientConnection;
  readonly limits: SlotLimits;
  readonly timer: NodeJS.Timeout;
}

interface Waiter {
  readonly key: string;
  readonly limits: SlotLimits;
  /** With a connection: a finishing job hands its open connection (and slot) over. */
  readonly grant: (connection: SmtpClientConnection | undefined) => void;
}

export class ConnectionPool {
  readonly #maxTotal: number;
  #total = 0;
  readonly #perKey = new Map<string, number>();
  readonly #perConnector = new Map<string, number>();
  readonly #idle = new Map<string, Idle[]>();
  readonly #waiters: Waiter[] = [];
  #closed = false;

  constructor(options: { maxTotal: number }) {
    this.#maxTotal = options.maxTotal;
  }

  /** Open connections by destination key, for the queue viewer and tests. */
  openConnections(): ReadonlyMap<string, number> {
    return this.#perKey;
  }

  async lease(key: string, limits: SlotLimits): Promise<Lease> {
    const idle = this.#takeIdle(key);
    if (idle) return this.#leaseFor(key, limits, idle);
    if (this.#mayOpen(key, limits)) {
      this.#count(key, limits.connector, +1);
      return this.#leaseFor(key, limits, undefined);
    }
    const handed = await new Promise<SmtpClientConnection | undefined>((grant) => {
      this.#waiters.push({ key, limits, grant });
      this.#makeRoom();
    });
    return this.#leaseFor(key, limits, handed);
  }

  /** Closes every idle connection and refuses to park more; busy ones close as their jobs end. */
  async close(): Promise<void> {
    this.#closed = true;
    const quits: Promise<void>[] = [];
    for (const [key, list] of this.#idle) {
      for (const idle of list) {
        clearTimeout(idle.timer);
        this.#count(key, idle.limits.connector, -1);
        quits.push(idle.connection.quit());
      }
    }
    this.#idle.clear();
    await Promise.allSettled(quits);
  }

  #leaseFor(key: string, limits: SlotLimits, reused: SmtpClientConnection | undefined): Lease {
    let released = false;
    return {
      reused,
      release: (connection) => {
        if (released) return;
        released = true;
        const reusable =
          connection?.usable === true &&
          !this.#closed &&
          connection.messagesSent < limits.maxMessagesPerConnection;
        if (reusable) {
          const waiter = this.#waiters.findIndex((w) => w.key === key);
          if (waiter >= 0) {
            const [w] = this.#waiters.splice(waiter, 1);
            w!.grant(connection);
            return;
          }
          // Parked only while nobody else waits for a slot that this connection would block.
          if (this.#waiters.length === 0) {
            this.#park(key, limits, connection);
            return;
          }
        }
        if (connection) void connection.quit();
        this.#count(key, limits.connector, -1);
        this.#grantWaiting();
      },
    };
  }

  #park(key: string, limits: SlotLimits, connection: SmtpClientConnection): void {
    const timer = setTimeout(() => {
      const list = this.#idle.get(key);
      const at = list?.findIndex((i) => i.connection === connection) ?? -1;
      if (!list || at < 0) return;
      list.splice(at, 1);
      if (list.length === 0) this.#idle.delete(key);
      void connection.quit();
      this.#count(key, limits.connector, -1);
      this.#grantWaiting();
    }, limits.idleTimeout);
    timer.unref();
    const list = this.#idle.get(key) ?? [];
    list.push({ connection, limits, timer });
    this.#idle.set(key, list);
  }

  #takeIdle(key: string): SmtpClientConnection | undefined {
    const list = this.#idle.get(key);
    while (list && list.length > 0) {
      const idle = list.pop()!;
      clearTimeout(idle.timer);
      if (list.length === 0) this.#idle.delete(key);
      if (idle.connection.usable) return idle.connection;
      idle.connection.close();
      this.#count(key, idle.limits.connector, -1);
      this.#grantWaiting();
    }
    return undefined;
  }

  #mayOpen(key: string, limits: SlotLimits): boolean {
    return (
      this.#total < this.#maxTotal &&
      (this.#perConnector.get(limits.connector) ?? 0) < limits.maxPerConnector &&
      (this.#perKey.get(key) ?? 0) < limits.maxPerDestination
    );
  }

  /** Node-wide limit reached while connections sit idle: close the oldest idle one. */
  #makeRoom(): void {
    if (this.#total < this.#maxTotal) return;
    for (const [key, list] of this.#idle) {
      const idle = list.shift();
      if (!idle) continue;
      if (list.length === 0) this.#idle.delete(key);
      clearTimeout(idle.timer);
      void idle.connection.quit();
      this.#count(key, idle.limits.connector, -1);
      this.#grantWaiting();
      return;
    }
  }

  #grantWaiting(): void {
    for (let i = 0; i < this.#waiters.length; ) {
      const w = this.#waiters[i]!;
      if (this.#mayOpen(w.key, w.limits)) {
        this.#waiters.splice(i, 1);
        this.#count(w.key, w.limits.connector, +1);
        w.grant(undefined);
      } else i++;
    }
  }

  #count(key: string, connector: string, delta: number): void {
    this.#total += delta;
    const k = (this.#perKey.get(key) ?? 0) + delta;
    if (k > 0) this.#perKey.set(key, k);
    else this.#perKey.delete(key);
    const c = (this.#perConnector.get(connector) ?? 0) + delta;
    if (c > 0) this.#perConnector.set(connector, c);
    else this.#perConnector.delete(connector);
  }
}
