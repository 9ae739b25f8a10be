"""``GET /v1/versions/{version_id}/diff``: what changed between two versions of a notebook.

The diff is nbdime's (cell-level JSON), computed in the gateway's diff worker process
(:mod:`runtime.notebook_diff`: large outputs are compared by hash, a slow diff is cut
off) and cached by the two contents' hashes for every gateway. By default a version is
compared with the one stored just before it; ``against`` names another version of the
same notebook (of the same app's workspace: other apps' versions do not exist here).
"""

from __future__ import annotations

from aiohttp import web

from orchestrator.gateway.context import DIFFS, NOTEBOOK_WORKER, NOTEBOOKS
from orchestrator.gateway.notebooks_api import readable_version, version_view
from runtime.http_errors import ApiError
from runtime.notebook_worker import NotebookTooLarge, WorkTooSlow
from schemas.versions import StoredVersion

routes = web.RouteTableDef()


async def _earlier(request: web.Request, version: StoredVersion) -> StoredVersion:
    if "against" in request.query:
        other, _ = await readable_version(request, request.query["against"])
        if (other.user, other.path) != (version.user, version.path):
            raise ApiError(
                422,
                "invalid_parameter",
                f"version {other.id} is of another notebook ({other.path})",
                details={"parameter": "against"},
            )
        return other
    earlier = await request.app[NOTEBOOKS].previous(version.id)
    if earlier is None:
        raise ApiError(404, "not_found", f"version {version.id} is the first of {version.path}")
    return earlier


@routes.get("/v1/versions/{version_id}/diff")
async def diff_versions(request: web.Request) -> web.Response:
    """The diff from ``against`` (default: the version before) to this version."""
    version, user = await readable_version(request, request.match_info["version_id"])
    earlier = await _earlier(request, version)
    cache, notebooks = request.app[DIFFS], request.app[NOTEBOOKS]
    result = await cache.get(earlier.sha256, version.sha256)
    if result is None:
        before = await notebooks.content(earlier.sha256)
        after = await notebooks.content(version.sha256)
        if before is None or after is None:
            raise ApiError(404, "not_found", "the content of a version is missing")
        try:
            result = await request.app[NOTEBOOK_WORKER].diff(before, after)
        except NotebookTooLarge as exc:
            raise ApiError(413, "too_large", str(exc)) from None
        except WorkTooSlow as exc:
            raise ApiError(503, "diff_too_slow", str(exc)) from None
        await cache.put(earlier.sha256, version.sha256, result)
    return web.json_response(
        {
            "path": version.path,
            "from": version_view(earlier, user),
            "to": version_view(version, user),
            **result,
        }
    )
