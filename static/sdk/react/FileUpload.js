// <FileUpload>: the chat seed's React component for the agent dashboard (and any chat page),
// written with React.createElement so that it needs no JSX compiler and no build step.
//
//   import FileUpload from '@vitrine/sdk/react';
//   <FileUpload companyId="COMP_123" sessionId="session_456" apiBaseUrl="https://vitrine.example"
//               jwt={authToken} onFileShared={(file) => ...} onError={(error) => ...} />
//
// Props, exactly the seed's: companyId, sessionId (required), apiBaseUrl (origin of the Vitrine
// server; '' or left out: this page's origin), jwt (a visitor chat token or an agent's access
// token; left out on a same-origin page signed in with the session cookie), onFileShared(file)
// (once per file id: this component's own uploads and every file the other side shares),
// onError(error) (an Error with code, error, status and source, as ChatbotFileUpload reports it).
//
// The work is done by ChatbotFileUpload (../chat-file-upload.js): the upload, the socket with its
// reconnection and catch-up, the checks. This file only draws it. React is a peer dependency,
// imported as 'react' (a bundler resolves it; in a browser without one, an import map does).
import React from 'react';
import { ChatbotFileUpload } from '../esm/chat-file-upload.js';

const h = React.createElement;

const STATUS_TEXT = { connecting: 'Connecting\u2026', open: 'Connected', closed: 'Disconnected' };

function fileKey(file) {
  return String(file.id);
}

// Appends the files whose id is not listed yet; a known id gets its fields refreshed (new
// signed links after a reload).
function mergeFiles(list, incoming) {
  const index = new Map(list.map((f, i) => [fileKey(f), i]));
  const out = list.slice();
  incoming.forEach((f) => {
    if (!f || f.id === undefined || f.id === null) return;
    const at = index.get(fileKey(f));
    if (at === undefined) {
      index.set(fileKey(f), out.length);
      out.push(f);
    } else {
      out[at] = Object.assign({}, out[at], f);
    }
  });
  return out;
}

let uploadCounter = 0;

export function FileUpload(props) {
  const { companyId, sessionId, apiBaseUrl, jwt } = props;
  // The latest callbacks, without reconnecting when the parent passes new function objects.
  const callbacks = React.useRef(props);
  callbacks.current = props;
  const client = React.useRef(null);
  const [files, setFiles] = React.useState([]);
  const [uploads, setUploads] = React.useState([]); // [{key, name, progress}]
  const [status, setStatus] = React.useState('closed');
  const [error, setError] = React.useState(null);
  const [dragging, setDragging] = React.useState(false);

  React.useEffect(() => {
    setFiles([]);
    setError(null);
    const c = new ChatbotFileUpload({
      companyId: companyId,
      sessionId: sessionId,
      apiBaseUrl: apiBaseUrl || '',
      jwt: jwt || undefined,
      onFileShared: (file) => {
        setFiles((list) => mergeFiles(list, [file]));
        const f = callbacks.current.onFileShared;
        if (typeof f === 'function') f(file);
      },
      onFileList: (list) => setFiles((old) => mergeFiles(old, list)),
      onError: (err) => {
        setError(err);
        const f = callbacks.current.onError;
        if (typeof f === 'function') f(err);
      },
      onStatus: (s) => setStatus(s)
    });
    client.current = c;
    return () => {
      c.close();
      if (client.current === c) client.current = null;
    };
  }, [companyId, sessionId, apiBaseUrl, jwt]);

  const send = (fileList) => {
    const c = client.current;
    if (!c) return;
    Array.from(fileList || []).forEach((file) => {
      const key = 'u' + ++uploadCounter;
      setError(null);
      setUploads((list) => list.concat([{ key: key, name: file.name, progress: 0 }]));
      const onProgress = (fraction) =>
        setUploads((list) => list.map((u) => (u.key === key ? Object.assign({}, u, { progress: fraction }) : u)));
      const done = () => setUploads((list) => list.filter((u) => u.key !== key));
      // Success reaches onFileShared and failures onError through the client; the promise only
      // clears the progress row.
      c.upload(file, { onProgress: onProgress }).then(done, done);
    });
  };

  const onChange = (e) => {
    send(e.target.files);
    e.target.value = ''; // the same file can be chosen again
  };
  const onDragOver = (e) => {
    e.preventDefault();
    if (!dragging) setDragging(true);
  };
  const onDragLeave = () => setDragging(false);
  const onDrop = (e) => {
    e.preventDefault();
    setDragging(false);
    if (e.dataTransfer) send(e.dataTransfer.files);
  };

  const ui = ChatbotFileUpload.ui;
  return h(
    'div',
    { className: 'vitrine-file-upload', 'data-status': status },
    h(
      'div',
      {
        className: 'vitrine-file-upload-drop' + (dragging ? ' is-dragging' : ''),
        onDragOver: onDragOver,
        onDragEnter: onDragOver,
        onDragLeave: onDragLeave,
        onDrop: onDrop
      },
      h(
        'label',
        null,
        'Share a file (or drop it here) ',
        h('input', { type: 'file', multiple: true, onChange: onChange, className: 'vitrine-file-upload-input' })
      ),
      h('span', { className: 'vitrine-file-upload-status', role: 'status' }, STATUS_TEXT[status] || status)
    ),
    error
      ? h('p', { className: 'vitrine-file-upload-error', role: 'alert' }, ui.describeError(error))
      : null,
    uploads.length
      ? h(
          'ul',
          { className: 'vitrine-file-upload-progress', 'aria-live': 'polite' },
          uploads.map((u) =>
            h(
              'li',
              { key: u.key },
              u.name + ' ',
              h('progress', { max: 1, value: u.progress, 'aria-label': 'Uploading ' + u.name })
            )
          )
        )
      : null,
    h(
      'ul',
      { className: 'vitrine-file-upload-files' },
      files.map((f) => {
        const href = ui.safeUrl(f.url);
        const name = ui.fileName(f);
        return h(
          'li',
          { key: fileKey(f), className: 'vitrine-file-upload-file', 'data-uploader': f.uploader || '' },
          href ? h('a', { href: href, target: '_blank', rel: 'noopener noreferrer' }, name) : name,
          ' ',
          h('span', { className: 'vitrine-file-upload-size' }, ui.humanSize(f.size))
        );
      })
    )
  );
}

export default FileUpload;
