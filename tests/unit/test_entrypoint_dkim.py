"""Stage dkim.sh on the host: the key check and the selector, against a temporary DKIM_DIR.
prepare_opendkim needs the opendkim user and `opendkim -n`: tests/docker/test_entrypoint_stages.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from smtp_out.dkim import DkimKey

from ..helpers import IMAGE_CONTEXT
from .entrypoint_shell import errors, run_stage


@pytest.fixture(scope="module")
def key() -> DkimKey:
    return DkimKey.generate(1024)


def dkim_dir(tmp_path: Path, key: DkimKey | None) -> dict[str, str]:
    d = tmp_path / "etc" / "opendkim"
    shutil.copytree(IMAGE_CONTEXT / "etc" / "opendkim", d)
    (d / "keys").mkdir()
    if key is not None:
        key.write_flat(d / "keys", "feedsubscription.com")
    return {"DKIM_DIR": str(d)}


def test_the_key_for_myhostname_passes_and_the_selector_is_read(tmp_path: Path, key: DkimKey) -> None:
    r = run_stage("DOMAIN=feedsubscription.com; check_dkim; dkim_selector", paths=dkim_dir(tmp_path, key))
    assert (r.returncode, r.stdout, r.stderr) == (0, "mail\n", "")


def test_the_key_follows_myhostname(tmp_path: Path, key: DkimKey) -> None:
    paths = dkim_dir(tmp_path, key)
    r = run_stage("DOMAIN=other.example; check_dkim", paths=paths)
    assert r.returncode == 1
    assert errors(r) == [
        f"[smtp-out] ERROR: {paths['DKIM_DIR']}/keys/other.example.private: DKIM key not found for "
        "other.example "
        f"(myhostname; mount the keys directory at {paths['DKIM_DIR']}/keys)"
    ]


def test_a_key_that_is_not_a_key_is_refused(tmp_path: Path) -> None:
    paths = dkim_dir(tmp_path, None)
    Path(paths["DKIM_DIR"], "keys", "feedsubscription.com.private").write_text("nope\n")
    r = run_stage("DOMAIN=feedsubscription.com; check_dkim", paths=paths)
    assert r.returncode == 1 and errors(r)[0].endswith(
        "feedsubscription.com.private: not a readable PEM private key"
    )


def test_a_configuration_without_selector_is_named(tmp_path: Path, key: DkimKey) -> None:
    paths = dkim_dir(tmp_path, key)
    conf = Path(paths["DKIM_DIR"], "opendkim.conf")
    conf.write_text("".join(ln for ln in conf.read_text().splitlines(True) if not ln.startswith("Selector")))
    r = run_stage("dkim_selector", paths=paths)
    assert r.returncode == 1 and errors(r) == [f"[smtp-out] ERROR: {conf}: no Selector line"]
