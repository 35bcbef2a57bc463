// Saves the text of a streaming answer while it grows, at most `intervalMs` behind and never two saves
// at once: a client that lost deltas (or reconnects) reads the text so far from the transcript. The
// first save too waits an interval after the first text: an answer that ends sooner is saved whole by
// the turn's next step, and saving its first token at once would only cost two round trips.
export class ProgressSaver {
  private text = '';
  private savedText = '';
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private lastSaveAt = 0;
  private closed = false;

  constructor(
    private readonly save: (text: string) => Promise<unknown>,
    private readonly intervalMs: number,
    private readonly onError: (err: unknown) => void,
  ) {}

  update(text: string): void {
    this.text = text;
    if (this.timer || this.closed) return;
    // Nothing saved yet: the text is as far behind as the first token is old.
    if (this.lastSaveAt === 0) this.lastSaveAt = Date.now();
    const wait = Math.max(0, this.lastSaveAt + this.intervalMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, wait);
  }

  /** Saves `text` now, not an interval later: a resumed answer replacing what the transcript shows. */
  saveNow(text: string): void {
    this.text = text;
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flush();
  }

  private flush(): void {
    if (this.closed || this.text === this.savedText) return;
    if (this.inFlight) {
      // Saved as soon as the current save is done.
      void this.inFlight.then(() => this.update(this.text));
      return;
    }
    const text = this.text;
    this.lastSaveAt = Date.now();
    this.inFlight = this.save(text)
      .then(() => void (this.savedText = text))
      .catch(this.onError)
      .finally(() => (this.inFlight = undefined));
  }

  /** No more saves; the final text is written by the turn's next step. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.inFlight;
  }
}
