// The four client classes of the Vitrine SDK. The React component is a separate entry point
// (`@vitrine/sdk/react`, react/FileUpload.js) so that this one needs no React.
export { ShareWidget } from './share-widget.js';
export { CollaborationClient, CollaborationReplay } from './collaboration.js';
export { AnalyticsDashboard } from './analytics-dashboard.js';
export { ChatbotFileUpload } from './chat-file-upload.js';
