"""The server side: how ``budget-guard serve`` runs the guarded app under uvicorn.

``settings`` is the ``[server]`` table (where to listen, how many connections, how long a
request head may take); ``connections`` enforces those bounds in uvicorn's own protocol
class; ``descriptors`` raises the file descriptor limit and budgets it.

Import the parts from their modules: this package imports none of them, because every config
check reads the ``[server]`` table, and a host app that runs its own server should not load
uvicorn's protocol classes for that.
"""
