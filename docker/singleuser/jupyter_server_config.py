"""Config of every single-user server in the compose deployment (``/etc/jupyter`` of the
single-user image): the save-events extension, saves that readers never see
half-written, the embed bridge, CSP for the configured app origins, and the
restricted-data mode when ``RESTRICTED_DATA`` is ``true``, and cookies and a JupyterLab
page that work from another site when ``CROSS_SITE_ORIGINS`` names app origins
(hub_service/embedding.py).

No ``allow_root``: the image runs as the unprivileged ``jovyan`` and a server started as
root refuses to run.
"""

import json
import os

from jupyter_core.paths import jupyter_config_dir

from hub_service.embedding import configure_singleuser_embedding
from hub_service.jupyterhub_contract import (
    CONTENTS_MANAGER,
    RESTRICTED_HIDDEN_LAB_PLUGINS,
    RESTRICTED_SERVICE,
    SAVE_EXTENSION,
)
from hub_service.labextension.build import LABEXTENSIONS_DIR

c = get_config()  # noqa: F821

app_origins = json.loads(os.environ.get("ORCH_APP_ORIGINS", "[]"))
cross_site_origins = json.loads(os.environ.get("CROSS_SITE_ORIGINS", "[]"))
configure_singleuser_embedding(c, app_origins, cross_site_origins)
c.ServerApp.root_dir = "/home/jovyan"
c.LabApp.extra_labextensions_path = [str(LABEXTENSIONS_DIR)]
c.ServerApp.contents_manager_class = CONTENTS_MANAGER
c.ServerApp.jpserver_extensions = {SAVE_EXTENSION: True}

if os.environ.get("RESTRICTED_DATA", "false").lower() == "true":
    # restricted-data mode: the server refuses downloads, exports and copies out ...
    c.ServerApp.extra_services = [RESTRICTED_SERVICE]
    # ... and JupyterLab does not offer them
    labconfig = os.path.join(jupyter_config_dir(), "labconfig")
    os.makedirs(labconfig, exist_ok=True)
    hidden = dict.fromkeys(RESTRICTED_HIDDEN_LAB_PLUGINS, True)
    with open(os.path.join(labconfig, "page_config.json"), "w") as page_config:
        json.dump({"disabledExtensions": hidden}, page_config)
