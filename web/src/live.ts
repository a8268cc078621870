// The applications of every token the caller may see, kept live by one WatchApplications
// stream (all three states, so a resolved application is seen leaving Pending). A broken
// stream resumes after its last cursor; an expired cursor starts again from a snapshot.
import { create } from "@bufbuild/protobuf";
import { ApplicationSchema, AppState, type Application } from "./gen/apitokens/v1/resources_pb";
import { WatchEventType } from "./gen/apitokens/v1/token_service_pb";
import { Code, failure, tokens } from "./api";

type Listener = (tokenId: string | null) => void;

export class LiveApplications {
  /** token id -> application name -> application, in the order names were first seen. */
  private readonly byToken = new Map<string, Map<string, Application>>();
  private readonly listeners = new Set<Listener>();
  private abort: AbortController | null = null;
  /** Whether the snapshot has arrived: before that, lists are incomplete. */
  ready = false;
  /** Set while the stream is down, with why. */
  trouble: string | null = null;

  start(onFatal: (code: Code, reason: string) => void): void {
    this.stop();
    const abort = new AbortController();
    this.abort = abort;
    void this.run(abort.signal, onFatal);
  }

  stop(): void {
    this.abort?.abort();
    this.abort = null;
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  of(tokenId: string): Application[] {
    return [...(this.byToken.get(tokenId)?.values() ?? [])];
  }

  pending(): Application[] {
    const out: Application[] = [];
    for (const apps of this.byToken.values()) {
      for (const app of apps.values()) if (app.state === AppState.PENDING) out.push(app);
    }
    return out.sort((a, b) => Number((b.updateTime?.seconds ?? 0n) - (a.updateTime?.seconds ?? 0n)));
  }

  /**
   * Records an application as a snapshot, an event or a call of ours gives it. An event
   * carries the evidence as it stood when the change was read; what it lacks (an older
   * server's events carry only the state and its time) is kept from what was known.
   */
  put(app: Application): void {
    const apps = this.byToken.get(app.tokenId) ?? new Map<string, Application>();
    const known = apps.get(app.name);
    const next = create(ApplicationSchema, {
      ...app,
      firstSeenTime: app.firstSeenTime ?? known?.firstSeenTime,
      lastSeenTime: app.lastSeenTime ?? known?.lastSeenTime,
      evidence: app.evidence ?? known?.evidence,
    });
    apps.set(app.name, next);
    this.byToken.set(app.tokenId, apps);
    this.emit(app.tokenId);
  }

  private emit(tokenId: string | null): void {
    for (const listener of this.listeners) listener(tokenId);
  }

  private async run(signal: AbortSignal, onFatal: (code: Code, reason: string) => void): Promise<void> {
    let cursor = "";
    let delay = 500;
    while (!signal.aborted) {
      try {
        const fresh = cursor === "";
        const stream = tokens.watchApplications(
          { cursor, states: [AppState.ALLOW, AppState.PENDING, AppState.DENY] },
          { signal },
        );
        const snapshot: Application[] = [];
        for await (const event of stream) {
          delay = 500;
          if (this.trouble !== null) {
            this.trouble = null;
            this.emit(null);
          }
          switch (event.type) {
            case WatchEventType.SNAPSHOT:
              if (event.application) snapshot.push(event.application);
              break;
            case WatchEventType.SNAPSHOT_END:
              if (fresh) this.byToken.clear();
              for (const app of snapshot) this.put(app);
              snapshot.length = 0;
              cursor = event.cursor;
              this.ready = true;
              this.emit(null);
              break;
            case WatchEventType.RECORDED:
            case WatchEventType.STATE_CHANGED:
              if (event.application) this.put(event.application);
              cursor = event.cursor;
              break;
            case WatchEventType.HEARTBEAT:
              if (event.cursor) cursor = event.cursor;
              break;
          }
        }
        // The server ends streams only when it shuts down: resume after the cursor.
      } catch (err) {
        if (signal.aborted) return;
        const f = failure(err);
        if (f.code === Code.OutOfRange) {
          cursor = "";
          continue;
        }
        if (f.code === Code.Unauthenticated || f.code === Code.PermissionDenied) {
          onFatal(f.code, f.reason);
          return;
        }
        this.trouble = f.message || "the live stream broke";
        this.emit(null);
      }
      await sleep(delay, signal);
      delay = Math.min(delay * 2, 10_000);
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });
}
