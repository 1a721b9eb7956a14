// Types of ShareWidget (../share-widget.js): creates a share link and renders its buttons.

/** The body of POST /api/v3/assets/{id}/share/ (SPEC §3): every option not listed below goes to the API. */
export interface ShareLinkSettings {
  share_type?: 'public' | 'private' | 'protected' | 'time_limited' | 'download_limited';
  /** Required for `protected`, at least 8 characters. */
  password?: string;
  allow_preview?: boolean;
  allow_download?: boolean;
  allow_comments?: boolean;
  allow_collaboration?: boolean;
  /** Positive, fractions allowed, at least one minute. */
  expires_in_hours?: number;
  max_downloads?: number;
  title?: string;
  description?: string;
  notify_on_access?: boolean;
  /** For `private` links: only these accounts may open it. */
  allowed_emails?: string[];
}

/** Widget-only options, never sent to the API, plus the link's settings. */
export interface ShareWidgetOptions extends ShareLinkSettings {
  /**
   * Access token (default: window.VITRINE_TOKEN, then localStorage "vitrine_token" or "access_token").
   * With none, a same-origin page's session cookie authenticates and the request carries `csrfToken`.
   */
  token?: string;
  /**
   * The page's CSRF token, sent in `X-CSRF-Token` when there is no access token (default: the
   * page's `<meta name="csrf-token">`, else a readable `vitrine_csrf` cookie).
   */
  csrfToken?: string;
  /** Element, or its id, the buttons are rendered into (default "share-buttons"). */
  container?: string | HTMLElement;
  /** Origin of the Vitrine server (default: this page's origin). */
  apiBase?: string;
  /** Called with the created link. */
  onCreated?: (share: ShareData) => void;
  /** Called when creation fails (default: a message in the container). */
  onError?: (error: ShareWidgetError) => void;
  /** true: no alert() after copying (the button still says "Copied!"). */
  silent?: boolean;
}

export interface SocialLinks {
  facebook: string;
  twitter: string;
  linkedin: string;
  whatsapp: string;
  telegram: string;
  reddit: string;
  [platform: string]: string;
}

/** The 201 answer of the share endpoint (the seed's shape plus the settings echoed back). */
export interface ShareData {
  id: number;
  uuid: string;
  share_url: string;
  /** The QR code as a `data:image/png;base64,` URL. */
  qr_code_data: string;
  social_links: SocialLinks;
  embed_code: string;
  created_at: string;
  expires_at: string | null;
  status: 'active' | 'expired' | 'exhausted' | 'revoked';
  [setting: string]: unknown;
}

/** The server's §0 error, as an Error. */
export interface ShareWidgetError extends Error {
  status?: number;
  code?: string;
  fields?: Record<string, string>;
}

export declare class ShareWidget {
  /** Starts creating the link at once; `ready` settles when it is rendered (or failed). */
  constructor(assetId: number | string, options?: ShareWidgetOptions);
  assetId: number | string;
  options: ShareWidgetOptions;
  /** The created link, once known. */
  shareData: ShareData | null;
  /** Resolves with the link, or null when creation failed (never rejects). */
  ready: Promise<ShareData | null>;
  init(): Promise<ShareData | null>;
  getAuthToken(): string;
  /** The CSRF token sent without an access token (see `ShareWidgetOptions.csrfToken`). */
  getCsrfToken(): string;
  apiBase(): string;
  /** The options minus the widget-only keys: the request body. */
  body(): ShareLinkSettings & Record<string, unknown>;
  container(): HTMLElement | null;
  /** POST /api/v3/assets/{id}/share/; rejects with a ShareWidgetError. */
  createShareLink(): Promise<ShareData>;
  renderShareButtons(shareData: ShareData): void;
  copyToClipboard(text: string, button?: HTMLElement | null): Promise<boolean | void>;
  fallbackCopy(text: string, done: () => void): boolean;
}

export default ShareWidget;

declare global {
  interface Window {
    ShareWidget: typeof ShareWidget;
    VITRINE_TOKEN?: string;
  }
}
