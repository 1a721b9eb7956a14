// Types of AnalyticsDashboard (../analytics-dashboard.js): a link's analytics as cards and charts.

export interface AnalyticsDashboardOptions {
  /** Period in days sent to the API, 1..365 (default 30). */
  days?: number;
  /** Origin of the Vitrine server (default '': this page's origin). */
  apiBase?: string;
  /** Access token sent as Bearer; without it the signed-in session cookie authenticates. */
  token?: string;
  /** Auto-refresh period in ms (default 30000; 0 disables it). */
  refreshMs?: number;
  /** false: do not fetch and render from the constructor; call init() yourself. */
  autoInit?: boolean;
}

export interface AnalyticsSummary {
  total_views: number;
  total_downloads: number;
  unique_visitors: number;
  /** downloads / views × 100, one decimal. */
  conversion_rate: number;
}

/** GET /api/v3/shares/{uuid}/analytics/?days=N (SPEC §5). */
export interface AnalyticsReport {
  summary: AnalyticsSummary;
  geographic_breakdown: Array<{ country: string; views: number }>;
  device_breakdown: Array<{ device_type: string; views: number }>;
  daily_breakdown: Array<{ date: string; views: number; downloads: number; unique_visitors: number }>;
  browser_breakdown: Array<{ browser: string; views: number }>;
  os_breakdown: Array<{ os: string; views: number }>;
  referrer_breakdown: Array<{ referrer: string; views: number }>;
  engagement: { avg_time_on_page_seconds: number | null };
  performance: { avg_load_ms: number | null };
  [key: string]: unknown;
}

export interface AnalyticsError extends Error {
  status?: number;
  code?: string;
}

export interface ChartConfig {
  kind: 'pie' | 'bar' | 'line';
  title?: string;
  /** The row field that names a slice or bar ('country', 'device_type', ...); not for 'line'. */
  labelKey?: string;
  /** Most slices or bars; the rest are summed as "Other" (default 8 for pie, 10 otherwise). */
  maxItems?: number;
}

/** One chart bound to one element: a <canvas> is drawn in 2D, anything else gets an inline SVG. */
export declare class Chart {
  constructor(el: HTMLElement, config: ChartConfig);
  el: HTMLElement;
  kind: ChartConfig['kind'];
  title: string | undefined;
  labelKey: string | null;
  maxItems: number;
  /** The rows last given to update(). */
  raw: Array<Record<string, unknown>>;
  model: unknown;
  renderer: 'canvas' | 'svg';
  /** Takes the API rows (e.g. report.geographic_breakdown) and redraws in place. */
  update(rows: Array<Record<string, unknown>>): this;
  draw(): void;
  destroy(): void;
}

export interface AnalyticsCharts {
  geographic?: Chart;
  device?: Chart;
  timeline?: Chart;
  browser?: Chart;
  os?: Chart;
  referrer?: Chart;
  [name: string]: Chart | undefined;
}

export declare class AnalyticsDashboard {
  constructor(shareUuid: string, options?: AnalyticsDashboardOptions);
  shareUuid: string;
  options: AnalyticsDashboardOptions;
  days: number;
  apiBase: string;
  token: string | null;
  refreshMs: number;
  charts: AnalyticsCharts;
  /** The last report rendered. */
  data: AnalyticsReport | null;
  lastError: AnalyticsError | null;
  /** Resolves with the first report (null when it failed); never rejects. */
  ready: Promise<AnalyticsReport | null>;
  init(): Promise<AnalyticsReport | null>;
  /** Rejects with an AnalyticsError. */
  fetchAnalytics(days?: number): Promise<AnalyticsReport>;
  renderDashboard(data: AnalyticsReport): void;
  renderSummaryCards(summary: AnalyticsSummary, full?: AnalyticsReport): void;
  renderGeographicChart(rows: AnalyticsReport['geographic_breakdown']): Chart | null;
  renderDeviceChart(rows: AnalyticsReport['device_breakdown']): Chart | null;
  renderTimelineChart(rows: AnalyticsReport['daily_breakdown']): Chart | null;
  renderBreakdownChart(id: string, rows: Array<Record<string, unknown>>, labelKey: string): Chart | null;
  updateCharts(data: AnalyticsReport): void;
  /** One refresh; never rejects (null when it failed). */
  refresh(): Promise<AnalyticsReport | null>;
  setupRealTimeUpdates(): void;
  showError(err: AnalyticsError | Error): void;
  clearError(): void;
  /** Stops polling and resize tracking; the drawing stays. */
  destroy(): void;

  static Chart: typeof Chart;
  /** The colour-blind-friendly palette the charts use. */
  static PALETTE: string[];
  /** The palette colour a label always gets. */
  static colourFor(label: string): string;
}

export default AnalyticsDashboard;

declare global {
  interface Window {
    AnalyticsDashboard: typeof AnalyticsDashboard;
  }
}
