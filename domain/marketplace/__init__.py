"""The Marketplace application, one module per kind of transaction (see domain.services)."""
