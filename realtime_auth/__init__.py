"""Who is connecting: auth modes, credentials, simplejwt tokens, the auth mixin, HTTP /auth, revocation."""
