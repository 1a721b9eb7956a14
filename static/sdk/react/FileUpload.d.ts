// Types of <FileUpload> (FileUpload.js): the chat seed's React component, with exactly its props.
import type { ReactElement } from 'react';
import type { ChatError, ChatFile } from '../esm/chat-file-upload.js';

export type { ChatError, ChatFile } from '../esm/chat-file-upload.js';

export interface FileUploadProps {
  companyId: string;
  sessionId: string;
  /** Origin of the Vitrine server; '' or left out: this page's origin. */
  apiBaseUrl?: string;
  /** A visitor chat token or an agent's access token; left out on a same-origin page signed in with the session cookie. */
  jwt?: string;
  /** Once per file id: this component's own uploads and every file the other side shares. */
  onFileShared?: (file: ChatFile) => void;
  /** A refused upload (too large, wrong type, ...), refused credentials, a lost connection. */
  onError?: (error: ChatError) => void;
}

export declare function FileUpload(props: FileUploadProps): ReactElement;

export default FileUpload;
