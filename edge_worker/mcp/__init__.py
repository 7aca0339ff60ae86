"""edge-worker as an MCP server: tools to delegate work to the daemon from any MCP client.

``config`` holds the settings, ``texts`` the messages, ``requests`` the checks of what a
caller asks (sans-I/O), ``backend`` the reads and durable writes, ``verify`` the
verification of a sub-task's branch, ``server`` the tools and
resources, ``http`` the bearer-guarded ``/mcp`` endpoint and ``stdio`` ``edge-worker mcp``.
"""
