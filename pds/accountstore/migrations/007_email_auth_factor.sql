-- Two-factor sign-in by email (emailAuthFactor): when set, a sign-in with the account password also needs a
-- code mailed to the account's address (email_token purpose "2fa_code").
ALTER TABLE account ADD COLUMN email_auth_factor INTEGER NOT NULL DEFAULT 0;
