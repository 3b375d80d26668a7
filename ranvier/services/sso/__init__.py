"""Single sign-on through OpenID Connect providers: the browser's trip to the provider and
back (oidc.py speaks to a provider), turning the provider's claims into a Matrix user
(mapping.py), and the service that ties them to accounts, login tokens and
user-interactive auth (service.py)."""
