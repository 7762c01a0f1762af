import { h, mount } from '../dom.js';

/**
 * Keyset pager over a `{ items, next }` API: "Next page" follows the server's cursor; "First page"
 * starts over. Nothing is counted or loaded in full, so it works the same at a million rows.
 */
export function keysetPager({ load, renderItems, pageLabel = 'items' }) {
  const body = h('div');
  const status = h('span.muted.small');
  const first = h('button', { type: 'button', disabled: true }, 'First page');
  const next = h('button', { type: 'button', disabled: true, 'data-testid': 'next-page' }, 'Next page');
  let cursor = null;
  let pageNo = 1;
  let generation = 0;

  async function show(after) {
    const gen = ++generation;
    first.disabled = true;
    next.disabled = true;
    status.textContent = 'loading…';
    try {
      const page = await load(after);
      if (gen !== generation) return;
      mount(body, renderItems(page.items ?? []));
      cursor = page.next ?? null;
      next.disabled = !cursor;
      first.disabled = pageNo === 1;
      status.textContent = `page ${pageNo} · ${page.items?.length ?? 0} ${pageLabel}${cursor ? '' : ' · end'}`;
    } catch (err) {
      if (gen !== generation) return;
      status.textContent = '';
      mount(body, h('div.notice.error', { role: 'alert' }, err.message));
    }
  }

  first.addEventListener('click', () => {
    pageNo = 1;
    void show(undefined);
  });
  next.addEventListener('click', () => {
    if (!cursor) return;
    pageNo += 1;
    void show(cursor);
  });

  return {
    element: h('div', body, h('div.pager', first, next, status)),
    reload: () => {
      pageNo = 1;
      return show(undefined);
    },
  };
}
