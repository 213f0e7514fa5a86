"""The sample deployment files are valid: nginx accepts the site (with a throwaway certificate
in place of the placeholders), and its webhook location is the one the bot serves."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bot.config import WebhookSettings
from tests.support import REPO
from tests.support.processes import nginx_binary

SITE = REPO / "deploy" / "nginx" / "safewell.conf"
LETSENCRYPT = "/etc/letsencrypt/live/bot.example.org/"


def test_the_site_proxies_the_webhook_path_the_bot_serves() -> None:
    site = SITE.read_text()
    assert f"location = {WebhookSettings(_env_file=None).path} {{" in site
    assert "non_idempotent" in site  # a POST in flight on a dead process goes to the next


def test_nginx_accepts_the_sample_site(tmp_path: Path) -> None:
    nginx, openssl = nginx_binary(), shutil.which("openssl")
    if nginx is None or openssl is None:
        pytest.skip("nginx and openssl are needed to check the sample site")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=bot.example.org",
         "-keyout", str(tmp_path / "privkey.pem"), "-out", str(tmp_path / "fullchain.pem")],
        check=True,
        capture_output=True,
    )  # fmt: skip
    site = (
        SITE.read_text()
        .replace(LETSENCRYPT, f"{tmp_path}/")
        .replace("/var/log/nginx/", f"{tmp_path}/")
    )
    (tmp_path / "site.conf").write_text(site)
    temp = " ".join(
        f"{kind}_temp_path {tmp_path}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "main.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{ access_log {tmp_path}/access.log; {temp} include {tmp_path}/site.conf; }}\n"
    )
    result = subprocess.run(
        [nginx, "-t", "-c", str(tmp_path / "main.conf"), "-p", str(tmp_path),
         "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
