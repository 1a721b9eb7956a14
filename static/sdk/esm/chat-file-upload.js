// ES module form of ChatbotFileUpload.
// The class is written once, in ../chat-file-upload.js, the file that <script> tags load (served at
// /static/sdk/chat-file-upload.js). Importing this module runs that file, which defines the class and,
// as a script tag does, sets globalThis.ChatbotFileUpload; this module then exports it. Nothing is
// copied, so the two forms cannot drift (../README.md, "One source").
import '../chat-file-upload.js';

export const ChatbotFileUpload = globalThis.ChatbotFileUpload;
export default ChatbotFileUpload;
