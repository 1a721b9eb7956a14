// The chat SDK's styles, injected while the page's head loads (before its body is shown).
ChatbotFileUpload.ui.injectStyles();
