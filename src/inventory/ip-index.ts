/**
 * IP address → the object holding it, for objects that each hold a few addresses: a pod its podIPs, a
 * Service its ClusterIPs, an EndpointSlice its endpoints' addresses, a Node its InternalIP and
 * ExternalIP. Addresses are kept as Node prints a socket's address (IPv6 compressed, lower case), so
 * an address from a socket finds its object without work on the lookup path.
 */

/**
 * An address as Node prints it: IPv4 dotted as is; IPv6 compressed and in lower case (RFC 5952, which
 * both libuv's inet_ntop and the WHATWG URL serializer follow); an IPv4-mapped IPv6 address
 * (::ffff:10.0.0.1, what a dual-stack socket reports for an IPv4 peer) as its IPv4 address.
 */
export function canonicalIp(ip: string): string {
  if (!ip.includes(':')) return ip;
  const dotted = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  if (dotted) return dotted[1]!;
  let host: string;
  try {
    host = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return ip.toLowerCase(); // not an address the URL parser takes (a zone id, say): compared as given
  }
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  if (!mapped) return host;
  const hi = parseInt(mapped[1]!, 16);
  const lo = parseInt(mapped[2]!, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/**
 * Two objects may claim one address for a while (a pod's IP reused while the watch has not yet said
 * the old pod is gone, events of two resources arriving out of order): the latest claim answers, and
 * dropping one object leaves the other's claim in place.
 */
export class IpIndex<V> {
  private readonly owners = new Map<string, { ips: string[]; value: V }>();
  /** address → keys of the objects claiming it, the latest last (almost always one) */
  private readonly byIp = new Map<string, string[]>();

  /** Sets an object's addresses and value (an object without addresses is dropped). */
  set(key: string, ips: readonly string[], value: V): void {
    const canonical = [...new Set(ips.map(canonicalIp))];
    if (canonical.length === 0) {
      this.delete(key);
      return;
    }
    const old = this.owners.get(key);
    if (old) for (const ip of old.ips) if (!canonical.includes(ip)) this.unclaim(ip, key);
    for (const ip of canonical) {
      const keys = this.byIp.get(ip);
      if (!keys) this.byIp.set(ip, [key]);
      else if (keys[keys.length - 1] !== key) {
        const at = keys.indexOf(key);
        if (at >= 0) keys.splice(at, 1);
        keys.push(key);
      }
    }
    this.owners.set(key, { ips: canonical, value });
  }

  delete(key: string): void {
    const old = this.owners.get(key);
    if (!old) return;
    this.owners.delete(key);
    for (const ip of old.ips) this.unclaim(ip, key);
  }

  private unclaim(ip: string, key: string): void {
    const keys = this.byIp.get(ip);
    if (!keys) return;
    const at = keys.indexOf(key);
    if (at >= 0) keys.splice(at, 1);
    if (keys.length === 0) this.byIp.delete(ip);
  }

  /** The value of the latest object claiming this address (given as Node prints it). */
  get(ip: string): V | undefined {
    let keys = this.byIp.get(ip);
    if (!keys && ip.includes(':')) keys = this.byIp.get(canonicalIp(ip));
    const key = keys?.[keys.length - 1];
    return key === undefined ? undefined : this.owners.get(key)?.value;
  }

  value(key: string): V | undefined {
    return this.owners.get(key)?.value;
  }

  has(key: string): boolean {
    return this.owners.has(key);
  }

  /** Drops every object whose key is not in keep (what a full list did not return); returns how many. */
  retain(keep: ReadonlySet<string>): number {
    let dropped = 0;
    for (const key of [...this.owners.keys()]) {
      if (!keep.has(key)) {
        this.delete(key);
        dropped++;
      }
    }
    return dropped;
  }

  /** Objects indexed. */
  get size(): number {
    return this.owners.size;
  }

  /** Distinct addresses indexed. */
  get addresses(): number {
    return this.byIp.size;
  }
}
