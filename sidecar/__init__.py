"""The Vault sidecar: the only process that talks to Vault (issue #3)."""
