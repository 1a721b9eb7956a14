// The replay page: plays the recording named by #replay's data-recording-url.
window.replay = new CollaborationReplay(document.getElementById('replay').getAttribute('data-recording-url'));
