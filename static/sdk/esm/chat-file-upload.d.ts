// Types of ChatbotFileUpload (../chat-file-upload.js): the chat seed's client (SPEC §7).

/** A chat file: the seed's upload answer and `file_shared` event (list entries use original_name). */
export interface ChatFile {
  id: number;
  company_id: string;
  session_id: string;
  uploader: 'user' | 'agent';
  /** Signed link, valid for one hour. */
  url: string;
  name?: string;
  original_name?: string;
  mime_type: string;
  size: number;
  thumbnail: string | null;
  created_at: string;
  /** The session's sequence number (socket events). */
  seq?: number;
  [key: string]: unknown;
}

export interface ChatMessage {
  id: number;
  sender: 'user' | 'agent';
  text: string;
  created_at: string;
  seq?: number;
  [key: string]: unknown;
}

/** A socket frame (`connection_established`, `file_shared`, `message`, `file_list`, `error`, `pong`...). */
export interface ChatFrame {
  type: string;
  [key: string]: unknown;
}

export type ChatErrorSource = 'upload' | 'list' | 'send' | 'socket' | 'connect';

/** The server's answer as an Error: `error` is its text (also `message`). */
export interface ChatError extends Error {
  name: 'ChatError';
  code: string;
  error: string;
  /** HTTP status; 0 when there was none (socket errors, network failures). */
  status: number;
  source?: ChatErrorSource;
  /** Seconds, on 429. */
  retryAfter?: number | null;
  /** The WebSocket close code, when the socket was refused. */
  closeCode?: number;
  fields?: Record<string, string>;
  [key: string]: unknown;
}

export type ChatStatus = 'connecting' | 'open' | 'closed';

export interface ChatStatusInfo {
  /** A reconnection is scheduled in this many ms. */
  retryInMs?: number;
  /** It will not reconnect (credentials refused): `error` says why. */
  stopped?: boolean;
  error?: ChatError;
}

export interface ChatResetInfo {
  files: ChatFile[];
  messages: ChatMessage[];
  reason: 'initial' | 'gap';
}

export interface ChatbotFileUploadCallbacks {
  /** A file new to this client (an own upload's answer or a `file_shared` event), once per id. */
  onFileShared?: ((this: ChatbotFileUpload, file: ChatFile) => void) | null;
  /** A chat message new to this client, once per id. */
  onMessage?: ((this: ChatbotFileUpload, msg: ChatMessage) => void) | null;
  /** The whole file list: answer to requestFileList(), or a reload. */
  onFileList?: ((this: ChatbotFileUpload, files: ChatFile[]) => void) | null;
  /** The session's history after the first connection ('initial') and after a gap ('gap'). */
  onReset?: ((this: ChatbotFileUpload, info: ChatResetInfo) => void) | null;
  onError?: ((this: ChatbotFileUpload, error: ChatError) => void) | null;
  /** Upload progress, 0..1. */
  onProgress?: ((this: ChatbotFileUpload, fraction: number, file: File) => void) | null;
  onStatus?: ((this: ChatbotFileUpload, status: ChatStatus, info: ChatStatusInfo) => void) | null;
  /** Every frame received, after it was handled. */
  onEvent?: ((this: ChatbotFileUpload, frame: ChatFrame) => void) | null;
}

export interface ChatbotFileUploadOptions extends ChatbotFileUploadCallbacks {
  companyId: string;
  sessionId: string;
  /** Origin of the Vitrine server (default '': this page's origin). */
  apiBaseUrl?: string;
  /** ws:// or wss:// origin of the socket (default: from apiBaseUrl, else this page). */
  wsBaseUrl?: string;
  /** Visitor chat token or agent access token; left out, the session cookie authenticates. */
  jwt?: string;
  /**
   * Without a jwt, uploads and other writes carry this CSRF token in `X-CSRF-Token` (default: the
   * page's `<meta name="csrf-token">`, else a readable `vitrine_csrf` cookie). Same origin only.
   */
  csrfToken?: string;
  /** false: do not open the socket from the constructor; call connect(). */
  autoConnect?: boolean;
  /** false: do not fetch files and messages after the first connection. */
  loadHistory?: boolean;
  /** How often the file list is fetched again for fresh signed links (default 40 min; 0: off). */
  urlRefreshMs?: number;
}

export interface UploadOptions {
  onProgress?: (fraction: number, file: File) => void;
}

/** Resolves with the stored file; rejects with a ChatError. */
export interface UploadPromise extends Promise<ChatFile> {
  abort(): void;
}

export interface UploadRow {
  element: HTMLLIElement;
  update(fraction: number): void;
  done(): void;
  fail(err: Partial<ChatError> | { error: string }): void;
}

export interface RenderOptions {
  /** Names shown for each side, e.g. {user: 'Visitor', agent: 'Agent'}. */
  labels?: { user?: string; agent?: string };
  /** Which side this page is: its own items get `chat-own`. */
  self?: 'user' | 'agent' | null;
}

export declare class Conversation {
  constructor(list: HTMLElement, opts?: RenderOptions);
  list: HTMLElement;
  opts: RenderOptions;
  items: Map<string, HTMLLIElement>;
  clear(): void;
  addFile(file: ChatFile): HTMLLIElement | null;
  addMessage(msg: ChatMessage): HTMLLIElement | null;
  merge(files: ChatFile[], messages: ChatMessage[]): void;
  scrollToEnd(): void;
}

/** The DOM helpers the widget and the agent page share. */
export interface ChatUi {
  el(tag: string, className?: string | null, text?: unknown): HTMLElement;
  detach(node: Node | null | undefined): void;
  humanSize(bytes: number): string;
  relativeTime(iso: string, now?: number): string;
  shortTime(iso: string): string;
  /** Only http(s) URLs and same-origin paths; null otherwise. */
  safeUrl(url: unknown): string | null;
  fileName(file: Partial<ChatFile> | null | undefined): string;
  describeError(err: Partial<ChatError> | null | undefined): string;
  renderFile(file: ChatFile, opts?: RenderOptions): HTMLLIElement;
  renderMessage(msg: ChatMessage, opts?: RenderOptions): HTMLLIElement;
  Conversation: typeof Conversation;
  /** Returns a function that removes the listeners. */
  wireDropZone(
    zone: HTMLElement,
    onFiles: (files: File[]) => void,
    opts?: { input?: HTMLInputElement; button?: HTMLElement; highlight?: HTMLElement }
  ): () => void;
  uploadRow(container: HTMLElement, file: File): UploadRow;
  uploadFiles(
    getClient: ChatbotFileUpload | null | (() => ChatbotFileUpload | null | Promise<ChatbotFileUpload | null>),
    files: ArrayLike<File>,
    container: HTMLElement,
    opts?: {
      onUploaded?: (file: ChatFile, client: ChatbotFileUpload) => void;
      onFailed?: (err: ChatError, file: File, client: ChatbotFileUpload) => void;
    }
  ): Promise<void>;
  showStatus(node: HTMLElement | null, status: ChatStatus, info?: ChatStatusInfo): void;
  injectStyles(doc?: Document): void;
  css: string;
}

export declare class ChatbotFileUpload implements ChatbotFileUploadCallbacks {
  /** Opens the socket at once unless `autoConnect: false`. Throws a TypeError without companyId/sessionId. */
  constructor(options: ChatbotFileUploadOptions);
  options: ChatbotFileUploadOptions;
  companyId: string;
  sessionId: string;
  apiBaseUrl: string;
  wsBaseUrl: string;
  jwt: string | null;
  /** The `csrfToken` option (null: read from the page on each write). */
  csrfToken: string | null;
  urlRefreshMs: number;
  onFileShared: ChatbotFileUploadCallbacks['onFileShared'];
  onMessage: ChatbotFileUploadCallbacks['onMessage'];
  onFileList: ChatbotFileUploadCallbacks['onFileList'];
  onReset: ChatbotFileUploadCallbacks['onReset'];
  onError: ChatbotFileUploadCallbacks['onError'];
  onProgress: ChatbotFileUploadCallbacks['onProgress'];
  onStatus: ChatbotFileUploadCallbacks['onStatus'];
  onEvent: ChatbotFileUploadCallbacks['onEvent'];
  /** Deduplicated by id, in arrival order. */
  files: ChatFile[];
  messages: ChatMessage[];
  lastSeq: number;
  /** 'user' or 'agent' once connected. */
  role: 'user' | 'agent' | string | null;
  status: ChatStatus;
  socket: WebSocket | null;

  static defaultWsBase(apiBaseUrl?: string): string;
  socketUrl(): string;
  connect(): this;
  /** Final for this client's callbacks; connect() opens again. */
  close(): void;
  /** false (and onError) when the text is empty, too long or the socket is not open. */
  sendMessage(text: string): boolean;
  requestFileList(): boolean;
  listFiles(): Promise<ChatFile[]>;
  listMessages(): Promise<ChatMessage[]>;
  /** Multipart POST /api/chat/upload/ with the seed's fields. */
  upload(file: File | Blob & { name?: string }, opts?: UploadOptions): UploadPromise;

  static ui: ChatUi;
  static chatError(fields: Record<string, unknown>): ChatError;
  /** Longest chat message, in Unicode characters. */
  static MAX_TEXT_CHARS: number;
}

export default ChatbotFileUpload;

declare global {
  interface Window {
    ChatbotFileUpload: typeof ChatbotFileUpload;
  }
}
