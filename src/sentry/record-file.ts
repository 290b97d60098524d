// The block record on disk: read once at start (checked field by field), written whole and
// atomically after each change. Writes are coalesced: a burst of blocks is one or two writes,
// always of the latest state.
import { mkdir, readFile, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parseRecord, renderRecord, type BlockEntry } from '../blocks/entry.js';
import { writeFileAtomic } from '../respond/atomic-file.js';

export class RecordFile {
  private writing: Promise<void> | null = null;
  private again = false;
  private failure: ((err: Error) => void) | undefined;

  /** `snapshot` gives the entries to write; `onError` hears of a write that failed. */
  constructor(
    readonly path: string,
    private readonly snapshot: () => Iterable<BlockEntry> = () => [],
    onError?: (err: Error) => void,
  ) {
    this.failure = onError;
  }

  /** The entries on disk; none when there is no file yet. Throws RecordError for a damaged one. */
  async load(): Promise<BlockEntry[]> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return parseRecord(text, this.path);
  }

  /** Writes the current snapshot soon; resolves once a write that includes it is done. */
  save(): Promise<void> {
    if (this.writing) {
      this.again = true; // the write in progress goes round once more, with the latest state
      return this.writing;
    }
    this.writing = (async () => {
      try {
        do {
          this.again = false;
          await this.write([...this.snapshot()]);
        } while (this.again);
      } catch (err) {
        this.failure?.(err as Error);
      } finally {
        this.writing = null;
      }
    })();
    return this.writing;
  }

  /** Writes `entries` now (for callers without a live snapshot: the admin commands). */
  async write(entries: readonly BlockEntry[]): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.path, renderRecord(entries), { mode: 0o600 });
  }

  /** Resolves when no write is pending. */
  async settled(): Promise<void> {
    while (this.writing) await this.writing;
  }

  async remove(): Promise<void> {
    await this.settled();
    await rm(this.path, { force: true });
  }
}
