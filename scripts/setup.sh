#!/usr/bin/env bash
# Create .venv (once) and install the project into it with the given extras, one line per step.
# Usage: scripts/setup.sh [extras]   e.g. scripts/setup.sh build,dev
# pip's own output goes to .venv/setup.log; a step that fails prints it. Nothing is installed
# again while pyproject.toml is the one of the last install and that install had the extras
# (.venv/installed records both); remove .venv to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-build}"
python="${PYTHON:-python3}"
log=.venv/setup.log

# step "what it does" command...: one line, its time, and pip's output only when it fails.
step() {
  local what="$1" started=$SECONDS
  shift
  printf '    %s ... ' "$what"
  if "$@" >>"$log" 2>&1; then
    echo "done ($((SECONDS - started)) s)"
  else
    echo "failed"
    # (the filter drops pip's notes about package-index folders absent on this machine)
    grep -v "is ignored: it is neither a file nor a directory" "$log" | tail -40 >&2
    echo "    the full output is in $log" >&2
    exit 1
  fi
}

digest=$(sha256sum pyproject.toml | cut -c1-64)
if [ -x .venv/bin/python ] && [ -f .venv/installed ]; then
  read -r done_digest done_extras <.venv/installed || true
  missing=$(comm -23 <(tr , '\n' <<<"$extras" | sort -u) \
    <(tr , '\n' <<<"${done_extras:-}" | sort -u))
  if [ "$done_digest" = "$digest" ] && [ -z "$missing" ]; then
    echo "    .venv is up to date (pyproject.toml unchanged since it was installed with ${done_extras})"
    exit 0
  fi
fi
rm -f .venv/installed
if [ ! -x .venv/bin/python ]; then
  printf '    creating .venv (%s) ... ' "$("$python" --version 2>&1)"
  "$python" -m venv .venv
  echo "done"
fi
: >"$log"
# No bytecode while installing: pip compiles one file after the other, the last step does it
# on every core.
pip=(.venv/bin/python -m pip install --disable-pip-version-check --progress-bar off --no-compile)

# The dependencies of the project and of its extras, read from pyproject.toml (an extra may
# name others: dev includes mlops[build]).
.venv/bin/python - "$extras" <<'EOF'
import re
import sys
import tomllib

with open("pyproject.toml", "rb") as fh:
    pyproject = tomllib.load(fh)
project = pyproject["project"]
wanted, seen = list(project["dependencies"]), set()

def add(extra: str) -> None:
    if extra in seen:
        return
    seen.add(extra)
    for spec in project["optional-dependencies"].get(extra, []):
        own = re.fullmatch(r"mlops\[(.*)\]", spec.replace(" ", ""))
        if own:
            for name in own.group(1).split(","):
                add(name)
        else:
            wanted.append(spec)

for extra in filter(None, sys.argv[1].split(",")):
    add(extra)
with open(".venv/requirements.txt", "w") as fh:
    fh.write("\n".join(wanted) + "\n")
with open(".venv/build-requirements.txt", "w") as fh:
    fh.write("\n".join(pyproject["build-system"]["requires"]) + "\n")
EOF
count=$(grep -c . .venv/requirements.txt)

step "upgrading pip" "${pip[@]}" --upgrade pip
step "installing $count dependencies (mlops and extras: $extras; downloaded on a first run)" \
  "${pip[@]}" -r .venv/requirements.txt
step "installing the build backend ($(paste -sd, .venv/build-requirements.txt))" \
  "${pip[@]}" -r .venv/build-requirements.txt
step "installing mlops in editable mode" \
  "${pip[@]}" --no-deps --no-build-isolation -e .
# (as pip does, a file that does not compile is left as it is: some packages ship Python 2 data)
compile_all() {
  .venv/bin/python -m compileall -q -j 0 "$(.venv/bin/python -c \
    'import sysconfig; print(sysconfig.get_paths()["purelib"])')" || true
}
step "compiling their bytecode" compile_all
echo "$digest $extras" >.venv/installed
echo "    ready: $(.venv/bin/mlops --version) in .venv (activate: source .venv/bin/activate)"
