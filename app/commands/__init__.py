"""Command handlers by capability: each takes the ports it uses (``Deps``) and the Marketplace.

No Flask, no SQL, no provider field names: the adapters translate, the commands decide.
"""
