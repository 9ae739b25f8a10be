"""A notebook as a read-only HTML page (nbconvert), for the view mode of ``open``.

Run in the notebook worker process (:mod:`runtime.notebook_worker`): nbconvert's import
and a render take seconds on large notebooks. Markdown and HTML outputs are sanitized
by nbconvert; the gateway also serves the page with a CSP ``sandbox`` and no script or
network source, so nothing in a notebook runs or fetches anything in the viewer.
"""

from __future__ import annotations


def render_html(notebook_text: str) -> str:
    """The HTML page of the stored notebook JSON ``notebook_text``, outputs included."""
    import nbformat
    from nbconvert import HTMLExporter  # imported once per worker process

    notebook = nbformat.reads(notebook_text, as_version=4)  # type: ignore[no-untyped-call]
    exporter = HTMLExporter(template_name="lab", sanitize_html=True)  # type: ignore[no-untyped-call]
    body, _resources = exporter.from_notebook_node(notebook)
    return str(body)
