"""docker-compose.yml is for users; no engine runs here, so its configuration is checked by parsing it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_both_server_flavours_are_defined_with_configurable_images() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "ruvector"}
    assert services["postgres"]["image"].startswith("${VECTORSTORE_PG_IMAGE:-pgvector/pgvector:")
    assert services["ruvector"]["image"].startswith("${RUVECTOR_IMAGE:-ruvnet/ruvector-postgres:")
    assert services["ruvector"]["profiles"] == ["ruvector"]


def test_every_service_sets_all_three_postgres_variables_and_a_pg_isready_healthcheck() -> None:
    for name, service in _compose()["services"].items():
        env = service["environment"]
        assert {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"} <= set(env), name
        assert "pg_isready" in " ".join(service["healthcheck"]["test"]), name
        assert service["volumes"], name


def test_readme_url_matches_the_compose_defaults() -> None:
    services = _compose()["services"]
    env = services["postgres"]["environment"]
    default = {k: re.fullmatch(r"\$\{\w+:-(.*)\}", v).group(1) for k, v in env.items()}  # type: ignore[union-attr]
    port = services["postgres"]["ports"][0].split(":")[0]
    url = (f"postgresql://{default['POSTGRES_USER']}:{default['POSTGRES_PASSWORD']}@localhost:{port}/"
           f"{default['POSTGRES_DB']}")
    assert url in (ROOT / "README.md").read_text()
    assert url in (ROOT / "docker-compose.yml").read_text()
