"""The codec stays light: importing it (or running the codec commands) never loads torch, timm or torchvision."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "torchvision", "timm")

# Steps run in order in one fresh interpreter; after each, the heavy modules loaded so far are recorded.
STEPS = {
    "import pladacodec": "import pladacodec",
    "encode + decode": "pladacodec.decode(pladacodec.encode([1, 2], [0, 1], 3))",
    "import pladacodec.reference": "import pladacodec.reference",
    "import pladacodec_cli.codec": "import pladacodec_cli.codec",
    "codec commands --help": (
        "from click.testing import CliRunner\n"
        "from pladacodec_cli.app import main\n"
        "for command in ('pack', 'unpack', 'inspect', 'verify'):\n"
        "    assert CliRunner().invoke(main, [command, '--help']).exit_code == 0"
    ),
}

_PROBE = """
import json, sys
loaded = {{}}
for name, code in {steps!r}.items():
    exec(code)
    loaded[name] = sorted(m for m in {heavy!r} if m in sys.modules)
print(json.dumps(loaded))
"""


def test_codec_never_imports_torch():
    code = _PROBE.format(steps=STEPS, heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == {step: [] for step in STEPS}
