// ES module form of ShareWidget.
// The class is written once, in ../share-widget.js, the file that <script> tags load (served at
// /static/sdk/share-widget.js). Importing this module runs that file, which defines the class and,
// as a script tag does, sets globalThis.ShareWidget; this module then exports it. Nothing is
// copied, so the two forms cannot drift (../README.md, "One source").
import '../share-widget.js';

export const ShareWidget = globalThis.ShareWidget;
export default ShareWidget;
