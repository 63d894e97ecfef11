#!/usr/bin/env bash
# CI: rulebook as a user gets it. Build the wheel, install it into a fresh venv (not this
# checkout, not editable), write a project with `rulebook init` in a temporary folder, edit one
# of its rule files, run `rulebook` there with no argument and check that the results come from
# the edited file (and not from the built-in one), and that outputs, caches and rules stayed in
# the project. Pip reaches only the configured package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
PY=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rulebook-wheel.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
t0=$(date +%s)

# setuptools builds in build/ and rulebook.egg-info/ (git-ignored) and never removes what it put there: start
# clean, or a module deleted from engine/ would still ship
rm -rf "$SRC/build" "$SRC/rulebook.egg-info"
"$PY" -m pip wheel -q --no-deps -w "$WORK/dist" "$SRC"
WHEEL=$(ls "$WORK"/dist/rulebook-*.whl)
echo "wheel: $(basename "$WHEEL") $(du -k "$WHEEL" | cut -f1) KiB"

"$PY" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -qq "$WHEEL"
RULEBOOK="$WORK/venv/bin/rulebook"
# the installed engine, not this checkout
( cd "$WORK" && "$WORK/venv/bin/python" - "$SRC" <<'PY'
import sys, engine, engine.paths as p
src = sys.argv[1]
assert not engine.__file__.startswith(src), engine.__file__
assert p.BUILTIN_CONF.is_dir() and "_defaults" in str(p.BUILTIN_CONF), p.BUILTIN_CONF
print("installed engine:", engine.__file__)
PY
)

"$RULEBOOK" init "$WORK/proj"
cd "$WORK/proj"
test -f rules/strategies/sma_cross.yaml && test -d conf && test -f README.md
# The edit: the project's sma_cross entry rule gets another id; only this file says so.
sed -i 's/- id: golden_cross/- id: project_edit_cross/' rules/strategies/sma_cross.yaml
grep -q project_edit_cross rules/strategies/sma_cross.yaml

"$RULEBOOK" > "$WORK/run.log" 2>&1 || { cat "$WORK/run.log"; exit 1; }
RESULTS=$(ls outputs/*/*/results.json)
"$WORK/venv/bin/python" - "$RESULTS" "$WORK/proj" <<'PY'
import json, sys
from pathlib import Path
res = json.loads(Path(sys.argv[1]).read_text())
proj = Path(sys.argv[2])
rules = {t["rule"] for t in res["trades"]}
assert "project_edit_cross" in rules, f"the edited rule did not trade: {sorted(rules)}"
assert "golden_cross" not in rules, "the built-in rule file was read"
assert "entry:project_edit_cross" in res["rule_stats"], sorted(res["rule_stats"])
assert (proj / ".cache" / "rulebook").is_dir(), "the sample market cache is not in the project"
print(f"results reflect the edit: {sum(t['rule'] == 'project_edit_cross' for t in res['trades'])} "
      f"entries by project_edit_cross, {res['metrics']['n_fills']} fills")
PY
# The project's conf/ comes first: the experiment `rulebook init` wrote is found and applied.
"$RULEBOOK" +experiment=mine mode=validate > "$WORK/validate.log" 2>&1 || { cat "$WORK/validate.log"; exit 1; }
grep -q "config OK" "$WORK/validate.log" || { cat "$WORK/validate.log"; exit 1; }
# A user mistake through the installed command: one line, exit 2.
set +e
"$RULEBOOK" strategy.params.fastt=3 > "$WORK/err.log" 2>&1
rc=$?
set -e
if [ "$rc" != 2 ] || ! grep -q "did you mean 'fast'" "$WORK/err.log" || grep -q Traceback "$WORK/err.log"; then
  echo "unknown key: exit $rc"; cat "$WORK/err.log"; exit 1
fi
echo "wheel check passed in $(( $(date +%s) - t0 ))s"
