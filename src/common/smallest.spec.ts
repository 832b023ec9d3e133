import { smallestByKey } from './smallest';

describe('smallestByKey', () => {
  const key = (s: string) => s;

  it('returns the k smallest in ascending order, as a full sort would', () => {
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    for (let round = 0; round < 20; round++) {
      const items = Array.from({ length: 500 }, () => rnd().toString(36));
      for (const k of [0, 1, 2, 17, 499, 500, 501]) {
        expect(smallestByKey(items, k, key)).toEqual([...items].sort().slice(0, k));
      }
    }
  });

  it('keeps equal keys in input order and works on any iterable', () => {
    const items = [
      { k: 'b', n: 1 },
      { k: 'a', n: 2 },
      { k: 'b', n: 3 },
      { k: 'a', n: 4 },
    ];
    expect(smallestByKey(new Set(items), 3, (i) => i.k).map((i) => i.n)).toEqual([2, 4, 1]);
  });

  it('orders by UTF-16 code units, like the `<` the cursors compare with', () => {
    expect(smallestByKey(['b', 'B', 'é', 'a', 'Z', '10', '9'], 7, key)).toEqual(['10', '9', 'B', 'Z', 'a', 'b', 'é']);
  });
});
