/**
 * A map that keeps its entries in order of use, least recently used first: the connection tables
 * of the tracker and of the collector, which touch an entry at every chunk and evict the oldest when
 * full. A `Map` kept in that order by delete and set costs two more hash operations per chunk (and
 * the holes they leave); here a use is a lookup and a move in a list. Iteration is in the same
 * order a `Map` so kept would give, and the entry the iteration is on may be deleted (not used) then.
 */

interface Node<K, V> {
  key: K;
  value: V;
  /** toward the least recently used */
  prev: Node<K, V> | undefined;
  /** toward the most recently used */
  next: Node<K, V> | undefined;
  removed: boolean;
}

export class LruMap<K, V> {
  private readonly nodes = new Map<K, Node<K, V>>();
  /** the least recently used */
  private head: Node<K, V> | undefined;
  /** the most recently used */
  private tail: Node<K, V> | undefined;

  get size(): number {
    return this.nodes.size;
  }

  /** The value, its place in the order unchanged. */
  get(key: K): V | undefined {
    return this.nodes.get(key)?.value;
  }

  /** The value, made the most recently used. */
  use(key: K): V | undefined {
    const n = this.nodes.get(key);
    if (!n) return undefined;
    if (n !== this.tail) {
      this.unlink(n);
      this.append(n);
    }
    return n.value;
  }

  /** Sets the value, the most recently used. */
  set(key: K, value: V): void {
    const n = this.nodes.get(key);
    if (n) {
      n.value = value;
      this.use(key);
      return;
    }
    const node: Node<K, V> = { key, value, prev: undefined, next: undefined, removed: false };
    this.nodes.set(key, node);
    this.append(node);
  }

  delete(key: K): boolean {
    const n = this.nodes.get(key);
    if (!n) return false;
    this.nodes.delete(key);
    this.unlink(n);
    n.removed = true; // its `next` stays: an iteration standing on it goes on from there
    return true;
  }

  /** The least recently used entry. */
  oldest(): [K, V] | undefined {
    return this.head ? [this.head.key, this.head.value] : undefined;
  }

  /** Entries from the least recently used. */
  *[Symbol.iterator](): IterableIterator<[K, V]> {
    let n = this.head;
    while (n) {
      yield [n.key, n.value];
      n = n.next;
      while (n?.removed) n = n.next;
    }
  }

  private unlink(n: Node<K, V>): void {
    if (n.prev) n.prev.next = n.next;
    else this.head = n.next;
    if (n.next) n.next.prev = n.prev;
    else this.tail = n.prev;
    n.prev = undefined;
  }

  private append(n: Node<K, V>): void {
    n.prev = this.tail;
    n.next = undefined;
    if (this.tail) this.tail.next = n;
    else this.head = n;
    this.tail = n;
  }
}
