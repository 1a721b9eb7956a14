// Types of CollaborationClient and CollaborationReplay (../collaboration.js): live review
// sessions over /ws/collaboration/{session_id}/ (SPEC §4) and their recordings.

export interface Comment {
  id: number;
  asset_id: number;
  author: { id: number | null; name: string };
  content: string;
  /** Fractions 0..1 of the stage, or null. */
  position_x: number | null;
  position_y: number | null;
  /** Media position ("HH:MM:SS.mmm"), or null. */
  timestamp: string | null;
  parent_comment_id: number | null;
  resolved: boolean;
  created_at: string;
  updated_at: string;
  replies?: Comment[];
  [key: string]: unknown;
}

export interface Participant {
  user_id: number;
  name: string;
  [key: string]: unknown;
}

/** A socket message: `session_state`, `cursor_position`, `comment`, `participant_joined`, ... */
export interface CollaborationMessage {
  type: string;
  seq?: number;
  [key: string]: unknown;
}

export interface CollaborationOptions {
  /** Access token sent as ?token= (without it the session cookie authenticates). */
  token?: string;
  /** Origin of the Vitrine server (default: this page's origin); only used to derive wsBase. */
  apiBase?: string;
  /** ws:// or wss:// origin of the socket (default: from apiBase or this page). */
  wsBase?: string;
  /** Element (or its id) cursors and pins are drawn in (default #collab-stage, else body). */
  container?: string | HTMLElement;
  /** Called with every message after the client handled it. */
  onMessage?: (data: CollaborationMessage) => void;
  /** false: do not connect from the constructor; call init(). */
  autoInit?: boolean;
  /** First reconnection delay (default 3000), doubled per failure up to 30 s. */
  reconnectDelayMs?: number;
  /** Most cursor updates sent per second (default 20). */
  cursorHz?: number;
  /** RTCIceServer list for voice and screen sharing (default none: works on one network). */
  iceServers?: RTCIceServer[];
  /** false: Shift+click fills the comment form instead of calling prompt(). */
  commentPrompt?: boolean;
}

export type CallKind = 'voice' | 'screen';

export interface CommentBoardOptions {
  list?: () => HTMLElement | null;
  overlay?: () => HTMLElement | null;
  timeline?: () => HTMLElement | null;
  media?: () => HTMLMediaElement | null;
  duration?: () => number | null;
  /** Prefix of each <li id>. */
  idPrefix?: string;
  /** When set, each comment gets a Reply button. */
  onReply?: (comment: Comment) => void;
}

/** Comment thread, pins and timeline markers, updated in place. */
export declare class CommentBoard {
  constructor(opts?: CommentBoardOptions);
  opts: CommentBoardOptions;
  items: Map<string, unknown>;
  orphans: Set<string>;
  nextPin: number;
  readonly size: number;
  get(id: number | string): Comment | null;
  clear(): void;
  /** Create or update (replies too); returns the comment's <li>, or null for a malformed one. */
  upsert(comment: Comment, options?: { flash?: boolean }): HTMLLIElement | null;
  /** Removes the comment and its replies; false when unknown. */
  remove(id: number | string): boolean;
  refreshTimeline(): void;
  focus(id: number | string): void;
  seek(seconds: number): void;
}

export declare class CollaborationClient {
  /** Connects at once unless `autoInit: false`. */
  constructor(sessionId: string, assetId?: number | string | null, options?: CollaborationOptions);
  sessionId: string;
  assetId: number | string | null | undefined;
  options: CollaborationOptions;
  token: string | null;
  apiBase: string;
  wsBase: string;
  reconnectDelayMs: number;
  cursorHz: number;
  iceServers: RTCIceServer[];
  commentPrompt: boolean;
  container: HTMLElement | null;
  websocket: WebSocket | null;
  /** Yours, from session_state. */
  userId: number | null;
  /** The session's features: cursor_tracking, voice_chat, screen_sharing, ... */
  features: Record<string, boolean>;
  asset: Record<string, unknown> | null;
  expiresAt: string | null;
  lastSeq: number;
  /** Who is online, by user id. */
  online: Map<string, Participant>;
  /** A session_state arrived on the current socket. */
  connected: boolean;
  /** The session is over: it will not reconnect. */
  ended: boolean;
  /** close() was called. */
  closed: boolean;
  /** The connection state in words. */
  status: string;
  peers: Map<string, unknown>;
  local: { voice: MediaStream | null; screen: MediaStream | null };
  /** The seed's Map of cursor elements, by user id. */
  cursors: Map<string, HTMLElement>;
  board: CommentBoard;

  static defaultWsBase(apiBase?: string): string;
  init(): this;
  getUserId(): number | null;
  socketUrl(): string;
  connectWebSocket(): WebSocket | null;
  /** Skips the reconnection wait. */
  reconnectNow(): void;
  /** Whether the message was handed to the socket (nothing is queued). */
  sendMessage(data: CollaborationMessage): boolean;
  setupEventListeners(): void;
  handleMessage(data: CollaborationMessage): void;
  showError(text: string): void;
  createCursorElement(userId: number | string): HTMLElement;
  updateCursor(userId: number | string, x: number, y: number, name?: string): HTMLElement | null;
  /** x, y: client pixel coordinates (null: no spot); asks with prompt() unless commentPrompt is false. */
  createComment(
    x?: number | null,
    y?: number | null
  ): { content: string; position_x: number | null; position_y: number | null; timestamp: string } | null;
  /** Prepares the comment form so its next comment is pinned at `pos`. */
  pinNextComment(pos: { x: number; y: number } | null, timestamp?: string | null): void;
  startReply(comment: Comment): void;
  displayComment(comment: Comment): HTMLLIElement | null;
  removeComment(commentId: number | string): boolean;
  /** Resolves with whether the call is now on. */
  toggleCall(kind: CallKind): Promise<boolean>;
  startCall(kind: CallKind): Promise<boolean>;
  /** Final: leaves the session, hangs up, stops every timer and listener. */
  close(): void;

  static Replay: typeof CollaborationReplay;
  static CommentBoard: typeof CommentBoard;
  /** Seconds from "HH:MM:SS(.mmm)", "MM:SS" or a number; null when it is not one. */
  static parseMediaTime(ts: string | number | null | undefined): number | null;
  /** "HH:MM:SS.mmm". */
  static formatMediaTime(seconds: number): string;
}

export interface RecordedEvent {
  seq: number;
  type: string;
  at: string;
  data: Record<string, unknown>;
  /** ms since the first event. */
  t: number;
}

/** GET /api/v3/collaboration/sessions/{id}/recording/ */
export interface Recording {
  session_id: string;
  events: Array<{ seq: number; type: string; at: string; data: Record<string, unknown> }>;
}

export interface ReplayOptions {
  /** Bearer token (default: the session cookie). */
  token?: string;
  /** Element (or its id) the replay is drawn in (default #replay-stage). */
  container?: string | HTMLElement;
  /** false: do not load from the constructor; call init(). */
  autoInit?: boolean;
}

export declare class CollaborationReplay {
  constructor(recordingUrl: string, options?: ReplayOptions);
  recordingUrl: string;
  options: ReplayOptions;
  token: string | null;
  container: HTMLElement | null;
  events: RecordedEvent[];
  /** Epoch ms of the first event. */
  startedAt: number;
  /** ms from the first to the last event. */
  duration: number;
  /** ms into the recording. */
  position: number;
  speed: 1 | 2 | 4 | 8;
  playing: boolean;
  cursors: Map<string, HTMLElement>;
  board: CommentBoard;
  /** Resolves with the recording (null when it could not be loaded); never rejects. */
  ready: Promise<Recording | null>;
  init(): Promise<Recording | null>;
  load(): Promise<Recording>;
  setRecording(rec: Recording): void;
  play(): void;
  pause(): void;
  toggle(): void;
  /** 1, 2, 4 or 8; anything else means 1. */
  setSpeed(n: number): void;
  seek(ms: number): void;
  destroy(): void;
}

export default CollaborationClient;

declare global {
  interface Window {
    CollaborationClient: typeof CollaborationClient;
    CollaborationReplay: typeof CollaborationReplay;
  }
}
