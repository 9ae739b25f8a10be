"""The demo host app: a web app that embeds notebooks through the orchestrator.

It shows the whole journey an app goes through: pick a user, list notebooks and
versions (gateway API), open one in an iframe (``open`` → launch link), edit, Save
(bridge → ``save`` command), watch the version list update live (gateway events,
proxied so the app key stays on the server), restore an older version.
"""
