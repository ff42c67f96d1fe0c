"""The bundled policies ship inside the package: an installed payerpolicy works from any folder."""

import json
import os
import subprocess
import sys
import zipfile

from .conftest import ROOT, judged


def test_wheel_carries_the_policy_tree_and_scrubs_outside_the_checkout(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(dist), str(ROOT)], check=True, capture_output=True)
    (wheel,) = dist.glob("payerpolicy-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "engine/_policies/payers.yaml" in names and "engine/_policies/medicare/rules.yaml" in names
    assert any(n.endswith("entry_points.txt") for n in names)

    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "c.json").write_text(json.dumps({"id": "W-1", "payer": "medicare", "service_date": "2019-06-03",
                                                  "lines": [{"code": "99442"}]}))
    env = dict(os.environ, PYTHONPATH=str(target), PAYERPOLICY_DB=f"sqlite:///{tmp_path / 's.sqlite'}")
    probe = subprocess.run([sys.executable, "-c", "import engine.policy.loader as l; print(l.bundled_policies())"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == str(target / "engine" / "_policies")
    run = subprocess.run([sys.executable, "-m", "engine.cli", "scrub", "c.json", "--format", "json"],
                         cwd=elsewhere, env=env, capture_output=True, text=True)
    assert run.returncode == 1, run.stderr
    assert json.loads(run.stdout)["claims"][0]["findings"][0]["rule"] == "medicare.noncovered-code"


def test_the_readme_python_api_examples_run(capsys):
    """The README's Python API blocks are run as written: they assert their own results, and
    the notebook's printed DataFrame is the one the README shows."""
    import re

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Python API", 1)[1].split("\n## ", 1)[0]
    api, notebook = re.findall(r"```python\n(.*?)```", section, re.S)
    exec(compile(api, "README.md (Python API)", "exec"), {})
    capsys.readouterr()
    exec(compile(notebook, "README.md (notebook)", "exec"), {})
    shown = section.split("which prints\n\n```\n", 1)[1].split("```", 1)[0]
    assert capsys.readouterr().out == shown


def test_the_api_loads_lazily_and_is_typed():
    import subprocess
    import sys

    code = "import sys, engine; assert 'engine.api' not in sys.modules; engine.scrub_claims; " \
           "assert 'engine.api' in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
    assert (ROOT / "engine" / "py.typed").is_file()
