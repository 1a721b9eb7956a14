// ES module form of AnalyticsDashboard.
// The class is written once, in ../analytics-dashboard.js, the file that <script> tags load (served at
// /static/sdk/analytics-dashboard.js). Importing this module runs that file, which defines the class and,
// as a script tag does, sets globalThis.AnalyticsDashboard; this module then exports it. Nothing is
// copied, so the two forms cannot drift (../README.md, "One source").
import '../analytics-dashboard.js';

export const AnalyticsDashboard = globalThis.AnalyticsDashboard;
export default AnalyticsDashboard;
