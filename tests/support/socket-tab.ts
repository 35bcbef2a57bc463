// A browser tab in tests: a socket.io client on /ws, signed in with `token`, recording every event it
// receives in order.
import { io as connectSocket, type Socket } from 'socket.io-client';

export type Tab = Socket & { got: { event: string; data: Record<string, unknown> }[] };

/** Connects; `opened` collects the tab so the test can close it afterwards. */
export async function openTab(url: string, token: string, opened: Socket[]): Promise<Tab> {
  const s = connectSocket(url, { path: '/ws', auth: { token }, transports: ['websocket'], forceNew: true }) as Tab;
  s.got = [];
  s.onAny((event: string, data: Record<string, unknown>) => s.got.push({ event, data }));
  opened.push(s);
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('connect_error', reject);
  });
  return s;
}
