/** Keyset page of the admin API: `{ items, next }`; `next` is the cursor for `?after=`. */
export interface Page<T> {
  items: T[];
  next: string | null;
}

/** Fetches the first page, or every page in order when `all` (bounded only by the data). */
export async function collectPages<T>(fetchPage: (after: string | undefined) => Promise<Page<T>>, all: boolean): Promise<T[]> {
  const items: T[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await fetchPage(after);
    items.push(...page.items);
    if (!all || !page.next) return items;
    after = page.next;
  }
}
