/**
 * The `k` smallest items of `items` by `key`, in ascending order, in O(n log k) comparisons and
 * O(k) memory: a page of a large unsorted collection without sorting all of it.
 */
export function smallestByKey<T>(items: Iterable<T>, k: number, key: (item: T) => string): T[] {
  const out: T[] = [];
  const keys: string[] = [];
  if (k <= 0) return out;
  for (const item of items) {
    const ik = key(item);
    if (out.length === k && ik >= keys[k - 1]) continue;
    // binary search for the insertion point (after equal keys: stable)
    let lo = 0;
    let hi = keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (keys[mid] <= ik) lo = mid + 1;
      else hi = mid;
    }
    keys.splice(lo, 0, ik);
    out.splice(lo, 0, item);
    if (out.length > k) {
      keys.pop();
      out.pop();
    }
  }
  return out;
}
