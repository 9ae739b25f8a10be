"""Embedding config (hub_service/embedding.py): CSP, cross-site cookies, the page's
storage fallback, and the generated Hub config over HTTPS."""

from __future__ import annotations

import http.cookies
from pathlib import Path

import pytest
from cryptography import x509

from devstack.hub_config import HubConfig, HubPorts, render_hub_config, render_singleuser_config
from devstack.tls import WebTls, issue_web_tls
from hub_service.embedding import (
    STORAGE_FALLBACK_SCRIPT,
    EmbeddingConfigError,
    allow_partitioned_cookies,
    hub_tornado_settings,
    lab_templates_with_storage_fallback,
    singleuser_tornado_settings,
)

SAME_SITE = "http://127.0.0.1:8050"
CROSS_SITE = "https://app.example"


def test_a_cookie_can_be_partitioned_once_allowed() -> None:
    allow_partitioned_cookies()
    allow_partitioned_cookies()  # idempotent
    cookies: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
    cookies["session"] = "v"
    cookies["session"]["partitioned"] = True
    cookies["session"]["secure"] = True
    cookies["session"]["samesite"] = "None"
    header = cookies["session"].OutputString()
    assert header.split("; ")[0] == "session=v"
    assert {"Partitioned", "Secure", "SameSite=None"} <= set(header.split("; ")[1:])
    cookies["plain"] = "w"  # a cookie that does not ask for it is not partitioned
    assert "Partitioned" not in cookies["plain"].OutputString()


def test_same_site_origins_get_the_csp_and_default_cookies() -> None:
    settings = hub_tornado_settings([SAME_SITE], [])
    assert settings == {
        "headers": {"Content-Security-Policy": f"frame-ancestors 'self' {SAME_SITE}"}
    }
    server = singleuser_tornado_settings([SAME_SITE], [], "/user/a/")
    assert "xsrf_cookie_kwargs" not in server


def test_cross_site_origins_make_every_cookie_cross_site_and_partitioned() -> None:
    origins = [SAME_SITE, CROSS_SITE]
    hub = hub_tornado_settings(origins, [CROSS_SITE])
    assert hub["cookie_options"] == {"samesite": "None", "secure": True, "partitioned": True}
    assert hub["headers"]["Content-Security-Policy"].endswith(f"{SAME_SITE} {CROSS_SITE}")
    server = singleuser_tornado_settings(origins, [CROSS_SITE], "/user/a/")
    assert server["xsrf_cookie_kwargs"] == {**hub["cookie_options"], "path": "/user/a/"}


@pytest.mark.parametrize(
    ("origins", "cross"),
    [([SAME_SITE], [SAME_SITE]), ([SAME_SITE], [CROSS_SITE])],
    ids=["plain-http", "not-an-app-origin"],
)
def test_a_cross_site_origin_must_be_an_https_app_origin(
    origins: list[str], cross: list[str]
) -> None:
    with pytest.raises(EmbeddingConfigError):
        hub_tornado_settings(origins, cross)


def test_the_page_template_runs_the_storage_fallback_before_jupyterlab(tmp_path: Path) -> None:
    written = lab_templates_with_storage_fallback(tmp_path / "templates")  # the installed Lab
    page = (written / "index.html").read_text()
    head = page.index("<head>") + len("<head>")
    assert page[head:].startswith(STORAGE_FALLBACK_SCRIPT)
    assert page.index(STORAGE_FALLBACK_SCRIPT) < page.index("main.")  # JupyterLab's bundle


def test_a_template_without_head_is_refused(tmp_path: Path) -> None:
    (tmp_path / "lab" / "static").mkdir(parents=True)
    (tmp_path / "lab" / "static" / "index.html").write_text("<html><body></body></html>")
    with pytest.raises(ValueError, match="no <head>"):
        lab_templates_with_storage_fallback(tmp_path / "out", app_dir=tmp_path / "lab")


def test_a_cross_site_hub_serves_https_and_needs_a_certificate(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="HTTPS"):
        HubConfig(
            tmp_path, service_token="t", app_origins=[CROSS_SITE], cross_site_origins=[CROSS_SITE]
        )
    tls = WebTls(tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem")
    config = HubConfig(
        tmp_path,
        service_token="t",
        app_origins=[CROSS_SITE],
        cross_site_origins=[CROSS_SITE],
        tls=tls,
    )
    text = render_hub_config(config, HubPorts(public=1, hub=2, proxy_api=3), tmp_path / "chp")
    assert "c.JupyterHub.bind_url = 'https://127.0.0.1:1'" in text
    assert f"c.JupyterHub.ssl_cert = {str(tls.cert_file)!r}" in text
    assert "c.JupyterHub.hub_bind_url = 'http://127.0.0.1:2'" in text  # internal: loopback
    assert repr([CROSS_SITE]) in render_singleuser_config(config)


def test_the_stacks_certificate_files_are_private_and_name_both_loopback_sites(
    tmp_path: Path,
) -> None:
    tls = issue_web_tls(tmp_path / "tls")
    assert (tmp_path / "tls").stat().st_mode & 0o777 == 0o700
    for path in (tls.ca_file, tls.cert_file, tls.key_file):
        assert path.stat().st_mode & 0o777 == 0o600, path
    cert = x509.load_pem_x509_certificate(tls.cert_file.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert issue_web_tls(tmp_path / "tls") == tls  # kept: a restart serves the same one
    assert tls.spki_sha256() == issue_web_tls(tmp_path / "tls").spki_sha256()
