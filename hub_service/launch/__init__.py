"""One-time launch links: codes signed by the orchestrator, redeemed at the Hub.

``codes`` is pure (stdlib only) and shared by the issuers (consumers, gateway) and the
Hub; ``authenticator`` is the JupyterHub side and imports JupyterHub.
"""
