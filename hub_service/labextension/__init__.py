"""The JupyterLab side of the save bridge: a prebuilt (federated) JupyterLab 4 extension.

``src/index.js`` is the plugin; :mod:`.build` turns it into a labextension folder that
the single-user servers load (``c.LabApp.extra_labextensions_path``).
"""
