// ES module form of CollaborationClient (and CollaborationReplay).
// The class is written once, in ../collaboration.js, the file that <script> tags load (served at
// /static/sdk/collaboration.js). Importing this module runs that file, which defines the class and,
// as a script tag does, sets globalThis.CollaborationClient; this module then exports it. Nothing is
// copied, so the two forms cannot drift (../README.md, "One source").
import '../collaboration.js';

export const CollaborationClient = globalThis.CollaborationClient;
export const CollaborationReplay = globalThis.CollaborationReplay;
export default CollaborationClient;
