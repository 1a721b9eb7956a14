-- The agents' dashboard (issue 22, part 4). One script for SQLite and PostgreSQL, like the others.
--
-- `chat_sessions.page_url`: the page the visitor opened the chat from, when the widget knows it
-- (its `page_url` at session start: the embedding page's address or `document.referrer`); an
-- http(s) URL without credentials or fragment, at most 2048 characters; NULL when unknown.
ALTER TABLE chat_sessions ADD COLUMN page_url TEXT;

-- `chat_reads`: how far each agent has read each session, as the highest message id and file id
-- of the session when they last looked (`POST /api/chat/sessions/{session_id}/read/`). A session's
-- unread count for an agent is the visitor's messages and files above those ids: derived from the
-- database on every request, so every instance answers the same.
CREATE TABLE chat_reads (
    session_id BIGINT NOT NULL,
    user_id    BIGINT NOT NULL,
    message_id BIGINT NOT NULL,
    file_id    BIGINT NOT NULL,
    read_at    BIGINT NOT NULL,
    PRIMARY KEY (session_id, user_id)
);
