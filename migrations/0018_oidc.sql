-- Single sign-on with OpenID Connect (SPEC §13, issue 21 part 5).
--
-- `oidc_logins`: sign-ins under way, between `GET /auth/oidc/login` and the provider's redirect to
-- `/auth/oidc/callback`. Kept in the database, not in one instance's memory, so that the callback
-- may land on any instance. `state` is the OAuth 2 `state` parameter (32 random bytes, hex) and the
-- key; a row is taken (deleted) by the callback that presents it, so a `state` works once.
-- `browser_hash` is the SHA-256 (hex) of a random value kept in a short-lived cookie of the browser
-- that started the sign-in: a callback from another browser (login CSRF) is refused. `nonce` is
-- the ID token's expected `nonce`, `pkce_verifier` the PKCE code verifier (S256), `return_to` the
-- same-origin path to go to afterwards. Rows past `expires_at` are refused and deleted by the
-- retention job.
CREATE TABLE oidc_logins (
    state         TEXT PRIMARY KEY,
    browser_hash  TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    return_to     TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);

CREATE INDEX oidc_logins_expires ON oidc_logins (expires_at);

-- `user_identities`: the account an identity of a provider signs in to, by the ID token's `iss`
-- and `sub` (stable at the provider, unlike the e-mail address). Later sign-ins match on it first,
-- then on the verified e-mail address. `email` is the address the provider last gave.
CREATE TABLE user_identities (
    issuer        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    user_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email         TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_login_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, subject)
);

CREATE INDEX user_identities_user ON user_identities (user_id);
