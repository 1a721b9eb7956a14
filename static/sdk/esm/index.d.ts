// Types of the four client classes; the React component has its own entry point (../react/FileUpload.d.ts).
export * from './share-widget.js';
export * from './collaboration.js';
export * from './analytics-dashboard.js';
export * from './chat-file-upload.js';
