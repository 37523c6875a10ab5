"""The domain: aggregates, events, money. Imports nothing from Flask, SQLAlchemy, Redis or Stripe."""
